"""LoRA as a picture: the frozen weight W next to its low-rank correction B·A, drawn to scale, with their sizes."""
from __future__ import annotations

from llmcourse.plots.figures import CourseFigure


def plot_lora(d_out: int, d_in: int, r: int, *, layer: str = "a linear layer", trainable: int | None = None,
              total: int | None = None):
    """W (d_out x d_in, frozen) + B (d_out x r) · A (r x d_in, trained), rectangles to scale, each labelled with its
    shape and number of weights. trainable/total (plain ints, e.g. counted on the real model) go in the title.
    Returns the Figure."""
    if min(d_out, d_in, r) < 1:
        from llmcourse.core.errors import CourseError

        raise CourseError(f"plot_lora: d_out, d_in and r must be positive, got {d_out}, {d_in}, {r}.")
    from matplotlib.patches import Rectangle

    fig = CourseFigure(figsize=(8, 3.4))
    ax = fig.subplots()
    gap = 0.25 * d_in
    boxes = [("W", 0.0, d_in, d_out, "#bbbbbb", "frozen"),  # (name, x, width, height, colour, note)
             ("B", d_in + gap, r, d_out, "#d1495b", "trained"),
             ("A", d_in + 2 * gap + r, d_in, r, "#d1495b", "trained")]
    for name, x, w, h, color, note in boxes:
        ax.add_patch(Rectangle((x, d_out - h), w, h, facecolor=color, edgecolor="black", label=name))
        ax.text(x + w / 2, d_out + 0.06 * d_out, f"{name}: {h}×{w}\n{h * w:,} {note}", ha="center", va="bottom",
                fontsize=8)
    ax.text(d_in + gap / 2, d_out / 2, "+", ha="center", va="center", fontsize=18)
    ax.text(d_in + 1.5 * gap + r, d_out / 2, "·", ha="center", va="center", fontsize=22)
    ax.set_xlim(-0.05 * d_in, 2 * d_in + 2 * gap + r + 0.05 * d_in)
    ax.set_ylim(-0.05 * d_out, 1.45 * d_out)
    ax.set_aspect("equal")
    ax.axis("off")
    lora, full = r * (d_in + d_out), d_in * d_out
    title = f"LoRA on {layer}, rank {r}: {lora:,} trained weights instead of {full:,} ({lora / full:.0%})"
    if trainable is not None and total is not None:
        title += f"\nwhole model: {trainable:,} trained of {total:,} ({trainable / total:.1%})"
    ax.set_title(title, fontsize=10)
    return fig
