"""Diagrams from plain data: the path to a finetune, and prompting, RAG and finetuning as data flows."""
import pytest
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from llmcourse import CourseError, plot_customisation_flows, plot_finetuning_pipeline
from llmcourse.plots.pipeline import COLOURS, CUSTOMISATION_FLOWS


def parts(fig):
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    return ax, boxes, arrows, [t.get_text() for t in ax.texts]


def test_pipeline_draws_one_box_per_stage_and_one_labelled_arrow_per_step():
    fig = plot_finetuning_pipeline([("a", "untrained"), ("b", "model"), ("c", "trained")], ["pre", "tune"],
                                   title="t")
    ax, boxes, arrows, texts = parts(fig)
    assert [b.get_gid() for b in boxes] == ["untrained", "model", "trained"]
    assert len(arrows) == 2
    assert texts == ["a", "b", "c", "pre", "tune"]
    assert boxes[2].get_facecolor()[:3] != boxes[1].get_facecolor()[:3]  # the trained model stands out
    x = [b.get_x() for b in boxes]
    assert x == sorted(x)  # left to right
    assert ax.get_title() == "t"


def test_default_pipeline_goes_from_random_weights_through_the_bundled_model_to_your_finetune():
    _, boxes, arrows, texts = parts(plot_finetuning_pipeline())
    assert len(boxes) == 4 and len(arrows) == 3
    assert texts[0].startswith("random weights") and "SmolLM2-135M-Instruct" in texts[2]
    assert [t.split("\n")[0] for t in texts[4:]] == ["pretraining", "instruction tuning", "finetuning"]


def test_flows_draw_a_row_per_method_with_the_data_entering_from_above():
    flows = [("p", [("q", "data"), ("m", "model"), ("a", "data")], (1, "docs")),
             ("f", [("q", "data"), ("m", "trained")], None)]
    ax, boxes, arrows, texts = parts(plot_customisation_flows(flows))
    assert len(boxes) == 3 + 1 + 2  # the side box of "p", none for "f"
    assert len(arrows) == 2 + 1 + 1
    assert texts == ["p", "q", "m", "a", "docs", "f", "q", "m"]
    side = boxes[3]
    assert side.get_y() > boxes[1].get_y()  # above the box it feeds
    assert side.get_x() + side.get_width() / 2 == pytest.approx(boxes[1].get_x() + boxes[1].get_width() / 2)
    assert boxes[5].get_y() < boxes[0].get_y()  # the second row is below the first


def test_default_flows_train_only_the_finetuned_model():
    _, boxes, _, texts = parts(plot_customisation_flows())
    assert [name for name, _, _ in CUSTOMISATION_FLOWS] == ["prompting", "RAG", "finetuning"]
    assert [b.get_gid() for b in boxes].count("trained") == 1
    assert "retriever:\nsearch the pages" in texts


def test_bad_diagram_data_gets_one_clear_error():
    with pytest.raises(CourseError, match="one step between each pair"):
        plot_finetuning_pipeline([("a", "model"), ("b", "model")], ["x", "y"])
    with pytest.raises(CourseError, match="unknown box kind 'robot'"):
        plot_finetuning_pipeline([("a", "robot"), ("b", "model")], ["x"])
    with pytest.raises(CourseError, match="side box points at box 5"):
        plot_customisation_flows([("p", [("q", "data")], (5, "docs"))])
    with pytest.raises(CourseError, match="no flows"):
        plot_customisation_flows([])
    assert set(COLOURS) >= {"data", "model", "trained"}
