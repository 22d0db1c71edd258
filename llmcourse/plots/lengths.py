"""Charts for the data lesson: how long the examples are in tokens, against the training budget."""
from __future__ import annotations

import statistics

from llmcourse.plots.figures import CourseFigure


def plot_token_lengths(lengths, max_length: int | None = None, *, ax=None, bins: int = 30, title: str | None = None):
    """Histogram of token lengths (a list, or a tokenized Dataset's report) with the max_length budget marked.

    Returns the Figure (a notebook shows it when a cell ends with the call)."""
    report = getattr(lengths, "tokenization_report", lengths)
    values = list(getattr(report, "lengths", report))
    max_length = max_length or getattr(report, "max_length", None)
    if ax is None:
        ax = CourseFigure(figsize=(7, 3)).subplots()
    ax.hist(values, bins=bins, color="#4c8eda", edgecolor="white")
    if max_length:
        over = sum(v > max_length for v in values)
        ax.axvline(max_length, color="#d1495b", linestyle="--", label=f"max_length {max_length}: {over} rows over")
        ax.legend(loc="upper right")
    ax.set_xlabel("tokens per example (prompt + answer + end token)")
    ax.set_ylabel("examples")
    ax.set_title(title or f"{len(values)} examples: median {statistics.median(values):g} tokens, max {max(values)}")
    return ax.figure
