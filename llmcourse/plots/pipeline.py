"""Boxes-and-arrows diagrams drawn from plain data: where finetuning fits, and how prompting, RAG and finetuning
move data into a model.

Each diagram is a list of boxes (a label and a kind) joined by arrows; the kind sets the colour, so a model whose
weights are trained looks different from one that is only prompted. Nothing here loads a model.
"""
from __future__ import annotations

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from llmcourse.core.errors import CourseError
from llmcourse.plots.figures import CourseFigure

COLOURS = {
    "data": "#e8eef7",      # text that goes in or comes out
    "step": "#f4f4f4",      # a program step (a search, a prompt being built)
    "model": "#c9dcf2",     # a model whose weights stay as they are
    "trained": "#f6c28b",   # a model whose weights this step changes
    "untrained": "#dddddd",  # random weights
}

# The path from random weights to the course's finetune: (label, kind) boxes, and the training step on each arrow.
FINETUNING_PIPELINE = (
    ("random weights\nknows nothing", "untrained"),
    ("base model\nSmolLM2-135M\ncontinues text", "model"),
    ("instruct model\nSmolLM2-135M-Instruct\nanswers: bundled here", "model"),
    ("your finetune\nKettlebird's facts\nand style", "trained"),
)
PIPELINE_STEPS = (
    "pretraining\nnext token on ~2T tokens\n(once, by the publisher)",
    "instruction tuning\nquestion/answer\nconversations",
    "finetuning\nyour own pairs\n(LoRA, notebook 03)",
)

# Prompting, RAG and finetuning as data flows: (name, boxes, (index of the box fed from the side, side label)).
CUSTOMISATION_FLOWS = (
    ("prompting", (("question", "data"), ("prompt:\ninstructions, examples\n+ question", "step"),
                   ("model\n(weights unchanged)", "model"), ("answer", "data")),
     (1, "examples you write")),
    ("RAG", (("question", "data"), ("retriever:\nsearch the pages", "step"),
             ("prompt:\nbest passages\n+ question", "step"), ("model\n(weights unchanged)", "model"),
             ("answer", "data")),
     (1, "your documents")),
    ("finetuning", (("question", "data"), ("prompt:\nthe question only", "step"),
                    ("model\n(weights trained)", "trained"), ("answer", "data")),
     (2, "your Q&A pairs,\ntrained in beforehand")),
)

_STEP, _W, _H = 1.35, 1.1, 0.44  # distance between columns, box width and height, in data units


def _box(ax, x, y, label, kind, *, w=_W, h=_H, fontsize=8):
    if kind not in COLOURS:
        raise CourseError(f"unknown box kind {kind!r}: use one of {', '.join(COLOURS)}")
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.06",
                           facecolor=COLOURS[kind], edgecolor="#555555", lw=1, gid=kind)
    ax.add_patch(patch)
    ax.text(x, y, label, ha="center", va="center", fontsize=fontsize)
    return patch


def _arrow(ax, start, end, label=None, *, fontsize=7):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#333333", lw=1.2))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.05, label, ha="center", va="bottom",
                fontsize=fontsize, color="#333333")


def _axes(width, height):
    fig = CourseFigure(figsize=(width, height))
    ax = fig.subplots()
    ax.set_axis_off()
    return fig, ax


def plot_finetuning_pipeline(stages=FINETUNING_PIPELINE, steps=PIPELINE_STEPS, *, title: str | None = None):
    """The chain from random weights to your finetune: one box per stage, one labelled arrow per training step.

    `stages` is a list of (label, kind) pairs, `steps` one label per arrow (one fewer than the stages).
    Returns the Figure."""
    stages, steps = list(stages), list(steps)
    if len(stages) < 2 or len(steps) != len(stages) - 1:
        raise CourseError(f"a pipeline needs at least 2 stages and one step between each pair: got "
                          f"{len(stages)} stages and {len(steps)} steps")
    gap = 2.1  # columns are wide enough for the step label between two boxes
    fig, ax = _axes(2.8 * len(stages), 2.2)
    w = 1.25
    for i, (label, kind) in enumerate(stages):
        _box(ax, i * gap, 0, label, kind, w=w, h=0.7)
    for i, label in enumerate(steps):
        _arrow(ax, (i * gap + w / 2 + 0.02, 0), ((i + 1) * gap - w / 2 - 0.02, 0))
        ax.text((i + 0.5) * gap, 0.08, label, ha="center", va="bottom", fontsize=7)
    ax.set_xlim(-w / 2 - 0.1, (len(stages) - 1) * gap + w / 2 + 0.1)
    ax.set_ylim(-0.5, 0.75)
    ax.set_title(title or "Where finetuning fits: each arrow is training, each box is a model", fontsize=10)
    return fig


def plot_customisation_flows(flows=CUSTOMISATION_FLOWS, *, title: str | None = None):
    """Prompting, RAG and finetuning as data flows, one row each: where your data enters and what it changes.

    `flows` is a list of (name, boxes, side) with boxes a list of (label, kind) and side (index, label): an extra
    box above the box at that index, with an arrow into it (where your data comes in). Returns the Figure."""
    flows = list(flows)
    if not flows:
        raise CourseError("no flows to draw: give at least one (name, boxes, side) row")
    columns = max(len(boxes) for _, boxes, _ in flows)
    row_height = 1.3
    fig, ax = _axes(2.2 * columns + 1.2, 1.35 * len(flows) + 0.4)
    for r, (name, boxes, side) in enumerate(flows):
        y = -r * row_height
        ax.text(-_W / 2 - 0.15, y, name, ha="right", va="center", fontsize=10, fontweight="bold")
        for c, (label, kind) in enumerate(boxes):
            _box(ax, c * _STEP, y, label, kind)
            if c:
                _arrow(ax, ((c - 1) * _STEP + _W / 2 + 0.01, y), (c * _STEP - _W / 2 - 0.01, y))
        if side is not None:
            index, label = side
            if not 0 <= index < len(boxes):
                raise CourseError(f"flow {name!r}: the side box points at box {index}, but there are {len(boxes)}")
            _box(ax, index * _STEP, y + 0.55, label, "data", h=0.3, fontsize=7)
            _arrow(ax, (index * _STEP, y + 0.4), (index * _STEP, y + _H / 2 + 0.01))
    ax.set_xlim(-_W / 2 - 1.0, (columns - 1) * _STEP + _W / 2 + 0.05)
    ax.set_ylim(-(len(flows) - 1) * row_height - 0.4, 0.85)
    ax.set_title(title or "Where your data goes: into the prompt, every time, or into the weights, once", fontsize=10)
    return fig
