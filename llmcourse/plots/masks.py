"""Pictures of the data lesson's masks, from plain numbers: which tokens train, which tokens see which, how the
Kettlebird splits relate. Token strings and 0/1 lists in, a Figure out; no model, no tokenizer."""
from __future__ import annotations

from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from llmcourse.plots.figures import CourseFigure

READ, TRAINED, HIDDEN = "#d9d9d9", "#2a9d8f", "#ffffff"
SPLIT_COLORS = {"train": "#2a9d8f", "validation": "#e9c46a", "test": "#4c8eda", "unseen": "#d1495b"}


def _shown(token: str) -> str:
    """A token as a tick label: line breaks and spaces made visible."""
    return token.replace("\n", "\\n").replace(" ", "\u00b7") or "''"


def plot_loss_mask(tokens: list[str], trained: list[int], *, title: str | None = None):
    """One example's tokens as a strip: grey ones are only read (label -100), green ones are trained.

    trained: 1 where the token's label counts in the loss, 0 where it is masked (same length as tokens)."""
    if len(tokens) != len(trained):
        raise ValueError(f"{len(tokens)} tokens but {len(trained)} mask values")
    fig = CourseFigure(figsize=(max(6.0, 0.22 * len(tokens)), 2.2))
    ax = fig.subplots()
    ax.imshow([list(map(int, trained))], cmap=ListedColormap([READ, TRAINED]), vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(tokens)), [_shown(t) for t in tokens], rotation=90, fontsize=8, family="monospace")
    ax.set_yticks([])
    ax.legend(handles=[Patch(color=READ, label="read only (label -100)"), Patch(color=TRAINED, label="trained")],
              loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    n = sum(map(int, trained))
    ax.set_title(title or f"{n} of {len(tokens)} tokens count in the loss", pad=26)
    return fig


def packing_attention_mask(position_ids: list[int], *, causal_only: bool = False) -> list[list[int]]:
    """Which token may attend to which in a packed block: 1 where row i may look at column j.

    Examples start where position_ids restart at 0. The course's packing: j <= i and the same example
    (block-diagonal). causal_only=True: j <= i only, what a plain causal mask (an attention_mask, or a KV cache)
    gives, so a token also sees the examples before it in its block."""
    segment, current = [], -1
    for p in position_ids:
        current += p == 0 or current < 0
        segment.append(current)
    n = len(position_ids)
    return [[int(j <= i and (causal_only or segment[i] == segment[j])) for j in range(n)] for i in range(n)]


def plot_packing_mask(position_ids: list[int], tokens: list[str] | None = None, *, compare_causal: bool = True):
    """The attention mask of one packed block as a heatmap (row: the token looking, column: the token it sees).

    Left the course's block-diagonal mask (each example sees only itself and its past); with compare_causal, on
    the right the plain causal mask that a KV cache or an attention_mask gives instead, where examples leak.
    tokens: the token strings as tick labels (short blocks); without them each example's start is ticked."""
    masks = [("block-diagonal: each example sees only itself", packing_attention_mask(position_ids))]
    if compare_causal:
        masks.append(("plain causal: later examples see earlier ones",
                      packing_attention_mask(position_ids, causal_only=True)))
    n = len(position_ids)
    size = min(max(3.0, 0.22 * n), 7.0)
    fig = CourseFigure(figsize=(size * len(masks) + 0.5, size + 0.8))
    axes = fig.subplots(1, len(masks), squeeze=False)[0]
    starts = [i for i, p in enumerate(position_ids) if p == 0]
    for ax, (title, mask) in zip(axes, masks):
        ax.imshow(mask, cmap=ListedColormap([HIDDEN, TRAINED]), vmin=0, vmax=1)
        for s in starts[1:]:  # example boundaries
            ax.axhline(s - 0.5, color="#555555", lw=0.8)
            ax.axvline(s - 0.5, color="#555555", lw=0.8)
        if tokens is not None:
            labels = [_shown(t) for t in tokens]
            ax.set_xticks(range(n), labels, rotation=90, fontsize=7, family="monospace")
            ax.set_yticks(range(n), labels, fontsize=7, family="monospace")
        else:  # a long block: one tick at the start of each example
            ax.set_xticks(starts, [f"ex. {k + 1}" for k in range(len(starts))], rotation=90, fontsize=8)
            ax.set_yticks(starts, [f"example {k + 1}" for k in range(len(starts))], fontsize=8)
        ax.set_xlabel("token it may look at")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("token looking")
    fig.suptitle(f"{len(starts)} examples packed in one block of {n} tokens")
    return fig


def plot_kettlebird_split(facts: dict[str, list[str]], *, title: str | None = None):
    """Facts (rows) by their paraphrases (columns), each cell coloured by the split that question is in.

    facts: fact id -> the split of each of its questions, e.g. {"f001": ["train", "train", "validation", "test"],
    "f011": ["unseen", "unseen"]}. A trained fact's paraphrases are in train (one maybe in validation) and one in
    test; an unseen fact's questions are all in unseen."""
    names = list(facts)
    width = max((len(v) for v in facts.values()), default=0)
    order = list(SPLIT_COLORS)
    grid = [[order.index(s) if s in order else -1 for s in facts[f]] + [-1] * (width - len(facts[f])) for f in names]
    fig = CourseFigure(figsize=(1.2 * width + 3.2, 0.32 * len(names) + 1.6))
    ax = fig.subplots()
    cmap = ListedColormap([HIDDEN] + list(SPLIT_COLORS.values()))
    ax.imshow([[v + 1 for v in row] for row in grid], cmap=cmap, vmin=0, vmax=len(order), aspect="auto")
    for r, f in enumerate(names):
        for c, split in enumerate(facts[f]):
            ax.text(c, r, split, ha="center", va="center", fontsize=8, color="white" if split != "validation" else "black")
    ax.set_xticks(range(width), [f"question {i + 1}" for i in range(width)])
    ax.set_yticks(range(len(names)), names)
    ax.set_ylabel("fact")
    ax.set_title(title or "Each fact is asked in several wordings; the split decides which the model trains on")
    return fig
