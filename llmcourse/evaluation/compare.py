"""Comparing ways of answering the same questions: side-by-side answers, a metrics table and a bar chart."""
from __future__ import annotations

import numpy as np
import pandas as pd

from llmcourse.evaluation.uncertainty import metric_interval
from llmcourse.plots.figures import CourseFigure


def compare_results(results: list, metrics=("exact_match", "token_f1", "key_fact"), *, seed: int = 0) -> pd.DataFrame:
    """One row per model and split, one column per metric and its 95 % interval: several EvalResults on the same questions.

    Each metric `m` comes with `m_low` and `m_high`: the Wilson interval where every score is 0 or 1 (exact match,
    key fact), the bootstrap interval of the mean otherwise (token F1, ROUGE-L). Metrics with no per-question
    scores (loss, perplexity) get no interval. Compare two models with `compare_pair`, not by overlapping bars."""
    frames = []
    for r in results:
        splits = [s for s in r.summary.index if s != "all"]
        frame = r.summary.loc[splits, ["n"]].copy()
        for m in [m for m in metrics if m in r.summary]:
            frame[m] = r.summary.loc[splits, m]
            if m in r.table:
                bounds = [metric_interval(r.table.loc[r.table["split"] == s, m], seed=seed) for s in splits]
                frame[f"{m}_low"], frame[f"{m}_high"] = [b[0] for b in bounds], [b[1] for b in bounds]
        frames.append(frame.assign(model=r.name))
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
    """A grouped bar chart of one metric from `compare_results`: a group per split, a bar per model (a Figure).

    Where the table has `<metric>_low` and `<metric>_high`, each bar carries its 95 % interval as an error bar."""
    wide = table[metric].unstack("split")
    ax = ax or CourseFigure(figsize=(7, 3.5)).subplots()
    yerr = None
    if f"{metric}_low" in table and f"{metric}_high" in table:
        low, high = table[f"{metric}_low"].unstack("split"), table[f"{metric}_high"].unstack("split")
        # pandas wants (models, 2, splits): below and above each bar
        yerr = np.stack([(wide - low).clip(lower=0).to_numpy(), (high - wide).clip(lower=0).to_numpy()], axis=1)
    wide.T.plot.bar(ax=ax, rot=0, width=0.8, yerr=yerr, capsize=3, error_kw={"elinewidth": 1})
    ax.set_ylim(0, 1)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} per split")
    ax.legend(fontsize=8, loc="upper right")
    return ax.figure
