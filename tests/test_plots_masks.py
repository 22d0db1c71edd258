"""The data lesson's mask pictures, drawn from plain numbers: exact cells, labels and boundaries."""
import numpy as np

from llmcourse.plots.masks import (SPLIT_COLORS, packing_attention_mask, plot_kettlebird_split, plot_loss_mask,
                                   plot_packing_mask)


def test_loss_mask_strip_colours_exactly_the_trained_tokens():
    fig = plot_loss_mask(["Q", ":", " Hi", "\n", "Yes", "<|im_end|>"], [0, 0, 0, 0, 1, 1])
    ax = fig.axes[0]
    assert np.asarray(ax.images[0].get_array()).tolist() == [[0, 0, 0, 0, 1, 1]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Q", ":", "\u00b7Hi", "\\n", "Yes", "<|im_end|>"]
    assert ax.get_title() == "2 of 6 tokens count in the loss"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["read only (label -100)", "trained"]


def test_packing_mask_is_block_diagonal_and_the_causal_one_leaks():
    assert packing_attention_mask([0, 1, 2, 0, 1]) == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0],
                                                       [0, 0, 0, 1, 0], [0, 0, 0, 1, 1]]
    assert packing_attention_mask([0, 1, 0], causal_only=True) == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    fig = plot_packing_mask([0, 1, 2, 0, 1], tokens=list("abcde"))
    left, right = fig.axes
    assert np.asarray(left.images[0].get_array()).sum() == 6 + 3 and np.asarray(right.images[0].get_array()).sum() == 15
    assert [line.get_ydata()[0] for line in left.lines[::2]] == [2.5]  # one boundary, between the two examples
    assert [t.get_text() for t in left.get_yticklabels()] == list("abcde")
    assert fig._suptitle.get_text() == "2 examples packed in one block of 5 tokens"
    alone = plot_packing_mask([0, 1, 0, 1, 2, 0], compare_causal=False).axes
    assert len(alone) == 1 and list(alone[0].get_yticks()) == [0, 2, 5]
    assert [t.get_text() for t in alone[0].get_yticklabels()] == ["example 1", "example 2", "example 3"]


def test_kettlebird_split_grid_names_every_question_by_its_split():
    fig = plot_kettlebird_split({"f001": ["train", "train", "validation", "test"], "f011": ["unseen", "unseen"]})
    ax = fig.axes[0]
    order = list(SPLIT_COLORS)  # cell value = 1 + index of the split, 0 = no such question
    assert np.asarray(ax.images[0].get_array()).tolist() == [[1, 1, 2, 3], [4, 4, 0, 0]]
    assert order == ["train", "validation", "test", "unseen"]
    assert [t.get_text() for t in ax.texts] == ["train", "train", "validation", "test", "unseen", "unseen"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["f001", "f011"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"question {i}" for i in range(1, 5)]
