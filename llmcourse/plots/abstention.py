"""Abstention before and after finetuning: one pair of bars per measure, each with its 95 % interval."""
from __future__ import annotations

from matplotlib.figure import Figure

from llmcourse.plots.figures import CourseFigure

COLOURS = {"before": "#9aa5b1", "after": "#2f6db5"}


def plot_abstention(table, ax=None, title: str = "before and after finetuning (bars: share; lines: 95% interval)") -> Figure:
    """Grouped bars from a table with one row per measure (its index) and columns before, before_low, before_high,
    after, after_low, after_high (shares from 0 to 1), and optionally n (questions, shown under each label)."""
    ax = ax or CourseFigure(figsize=(7.5, 3.6)).subplots()
    names = [str(i) for i in table.index]
    width = 0.38
    for j, when in enumerate(("before", "after")):
        xs = [i + (j - 0.5) * width for i in range(len(names))]
        values = [float(v) for v in table[when]]
        errors = [[v - float(lo) for v, lo in zip(values, table[f"{when}_low"])],
                  [float(hi) - v for v, hi in zip(values, table[f"{when}_high"])]]
        ax.bar(xs, values, width, yerr=errors, capsize=4, color=COLOURS[when], label=when,
               error_kw={"elinewidth": 1.2, "ecolor": "#333333"})
    labels = [f"{name}\n({int(n)} questions)" for name, n in zip(names, table["n"])] if "n" in table else names
    ax.set_xticks(range(len(names)), [label.replace(": ", ":\n", 1) for label in labels], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of questions")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.figure.tight_layout()
    return ax.figure
