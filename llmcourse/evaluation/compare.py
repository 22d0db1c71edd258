"""Comparing ways of answering the same questions: side-by-side answers, a metrics table and a bar chart."""
from __future__ import annotations

import pandas as pd

from llmcourse.plots.figures import CourseFigure


def compare_results(results: list, metrics=("exact_match", "token_f1", "key_fact")) -> pd.DataFrame:
    """One row per model and split, one column per metric: several EvalResults on the same questions."""
    frames = [r.summary.loc[[s for s in r.summary.index if s != "all"], ["n", *[m for m in metrics if m in r.summary]]]
              .assign(model=r.name) for r in results]
    table = pd.concat(frames).rename_axis("split").reset_index()
    return table.set_index(["model", "split"])


def side_by_side(results: list, extra=()) -> pd.DataFrame:
    """Each question once, its reference, and every model's answer in its own column (plus `extra` columns)."""
    first = results[0].table
    table = first[["split", "question", "reference", *extra]].copy()
    for r in results:
        if list(r.table["question"]) != list(first["question"]):
            raise ValueError(f"{r.name} answered other questions than {results[0].name}: compare on the same set.")
        table[r.name] = list(r.table["prediction"])
    return table


def plot_comparison(table: pd.DataFrame, metric: str = "key_fact", ax=None):
    """A grouped bar chart of one metric from `compare_results`: a group per split, a bar per model (a Figure)."""
    wide = table[metric].unstack("split")
    ax = ax or CourseFigure(figsize=(7, 3.5)).subplots()
    wide.T.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} per split")
    ax.legend(fontsize=8, loc="upper right")
    return ax.figure
