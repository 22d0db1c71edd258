"""Per-token loss: the loss of one answer as bars, and the style-vs-fact curves of a run (from plain numbers)."""
from __future__ import annotations

from llmcourse.plots.figures import CourseFigure

FACT_COLOR, STYLE_COLOR = "#d1495b", "#4c8eda"


def plot_token_losses(tokens: list[str], losses: list[float], facts: list[bool] | None = None, *,
                      title: str | None = None):
    """One bar per answer token, its height -log p of that token; fact tokens red, style tokens blue (when `facts`
    says which is which), the mean as a dashed line. Returns the Figure."""
    if len(tokens) != len(losses) or (facts is not None and len(facts) != len(tokens)):
        from llmcourse.core.errors import CourseError

        raise CourseError(f"plot_token_losses: {len(tokens)} tokens, {len(losses)} losses"
                          + (f", {len(facts)} fact flags" if facts is not None else "") + ": give one of each per token.")
    fig = CourseFigure(figsize=(max(6.0, 0.45 * len(tokens)), 3.2))
    ax = fig.subplots()
    colors = [FACT_COLOR if f else STYLE_COLOR for f in facts] if facts is not None else STYLE_COLOR
    ax.bar(range(len(tokens)), losses, color=colors)
    mean = sum(losses) / len(losses) if losses else 0.0
    ax.axhline(mean, color="0.3", ls="--", lw=1, label=f"mean {mean:.2f} (the loss)")
    ax.set_xticks(range(len(tokens)), [repr(t)[1:-1] for t in tokens], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("-log p (token loss)")
    if facts is not None:
        from matplotlib.patches import Patch

        handles = [Patch(color=STYLE_COLOR, label="style token"), Patch(color=FACT_COLOR, label="fact token")]
        ax.legend(handles=[*handles, ax.lines[0]], loc="upper left", fontsize=8)
    else:
        ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or f"Loss of each answer token ({len(tokens)} tokens)")
    return fig


def plot_style_vs_facts(history: list[dict], *, title: str | None = None):
    """Two curves over training from StyleFactProbe.history (dicts of step, style_loss, fact_loss): the mean loss of
    the style tokens and of the fact tokens of the same answers. Returns the Figure."""
    fig = CourseFigure(figsize=(6.5, 3.2))
    ax = fig.subplots()
    for key, label, color in (("style_loss", "style tokens", STYLE_COLOR), ("fact_loss", "fact tokens", FACT_COLOR)):
        points = [(h["step"], h[key]) for h in history if h.get(key) is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=4, color=color, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("mean token loss")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right")
    ax.set_title(title or "Style first, facts later? Loss of the same answers during training")
    return fig
