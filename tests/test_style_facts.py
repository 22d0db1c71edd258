"""Style first, facts later: splitting answer tokens into fact and style tokens, the probe in a real run, its plots."""
import math

import pytest

from llmcourse import CourseError, load_model
from llmcourse.evaluation.probes import StyleFactProbe, fact_spans, fact_token_mask
from llmcourse.plots.lora import plot_lora
from llmcourse.plots.token_loss import FACT_COLOR, STYLE_COLOR, plot_style_vs_facts, plot_token_losses
from llmcourse.training.config import TrainConfig
from llmcourse.training.trainer import train

ROWS = [{"prompt": f"What is the code of box {i}?", "completion": f"Box {i} has code {i * 7 % 10}{i % 3}."}
        for i in range(24)]


def test_fact_tokens_are_the_tokens_that_overlap_a_key_fact():
    answer, question = "Kettlebird was founded in 2017 by Ana Oyelaran-Voss.", "When was Kettlebird founded?"
    assert fact_spans(answer, question) == [(26, 30), (34, 37), (38, 46), (47, 51)]  # 2017, Ana, Oyelaran, Voss
    tokens = ["K", "ettle", "bird", " was", " founded", " in", " 20", "17", " by", " An", "a", " Oye", "laran",
              "-", "Voss", ".", "<|im_end|>", "\n"]
    assert fact_token_mask(answer, tokens, question) == [False, False, False, False, False, False, True, True,
                                                         False, True, True, True, True, False, True, False, False,
                                                         False]
    # without the question, the company name mid-sentence is no fact either (it starts the sentence)
    assert fact_token_mask("Call 555.", [" Call", " 5", "55", "."]) == [False, True, True, False]


def test_the_probe_measures_a_real_run_at_step_0_and_evenly_after(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path / "runs"))
    model, tokenizer = load_model("tiny-random")
    probe = StyleFactProbe(ROWS[20:], tokenizer, points=2)
    config = TrainConfig.fast(per_device_train_batch_size=4, max_length=48, max_steps=4, learning_rate=3e-3)
    run = train(config, model=model, tokenizer=tokenizer, data={"train": ROWS[:20], "validation": ROWS[20:]},
                callbacks=[probe], verbose=False, estimate=False)
    assert run.status == "finished"
    assert [p["step"] for p in probe.history] == [0, 2, 4]
    untouched = StyleFactProbe(ROWS[20:], tokenizer).measure(load_model("tiny-random")[0], bf16=run.precision == "bf16")
    assert {(p["fact_tokens"], p["style_tokens"]) for p in probe.history} == {(4 * 2, untouched["style_tokens"])}
    first, last = probe.history[0], probe.history[-1]
    assert first["fact_loss"] == pytest.approx(untouched["fact_loss"], rel=1e-3)  # step 0: before any update
    assert first["style_loss"] == pytest.approx(untouched["style_loss"], rel=1e-3)
    assert all(math.isfinite(p["fact_loss"]) and math.isfinite(p["style_loss"]) for p in probe.history)
    assert last["style_loss"] < first["style_loss"]  # training on these answers' template lowers their loss
    assert "style tokens step 0:" in probe.summary() and "step 4:" in probe.summary()


def test_a_probe_without_rows_says_so():
    with pytest.raises(CourseError, match="at least one"):
        StyleFactProbe([], load_model("tiny-random")[1])


def test_token_loss_bars_have_one_bar_per_token_coloured_by_kind():
    fig = plot_token_losses(["K", " 20", "17", "."], [1.0, 3.0, 2.0, 4.0], [False, True, True, False])
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [1.0, 3.0, 2.0, 4.0]
    colors = [p.get_facecolor()[:3] for p in ax.patches]
    import matplotlib.colors as mc
    assert colors == [mc.to_rgb(c) for c in (STYLE_COLOR, FACT_COLOR, FACT_COLOR, STYLE_COLOR)]
    assert ax.lines[0].get_ydata()[0] == pytest.approx(2.5)  # the mean: the example's loss
    assert [t.get_text() for t in ax.get_xticklabels()] == ["K", " 20", "17", "."]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["style token", "fact token", "mean 2.50 (the loss)"]
    with pytest.raises(CourseError, match="one of each"):
        plot_token_losses(["a"], [1.0, 2.0])


def test_style_vs_fact_plot_draws_two_curves_from_the_probe_history():
    history = [{"step": 0, "style_loss": 3.0, "fact_loss": 4.0}, {"step": 5, "style_loss": 1.0, "fact_loss": 3.5},
               {"step": 9, "style_loss": 0.5, "fact_loss": None}]
    ax = plot_style_vs_facts(history).axes[0]
    style, fact = ax.lines
    assert (style.get_label(), list(style.get_xdata()), list(style.get_ydata())) == ("style tokens", [0, 5, 9],
                                                                                      [3.0, 1.0, 0.5])
    assert (fact.get_label(), list(fact.get_xdata()), list(fact.get_ydata())) == ("fact tokens", [0, 5], [4.0, 3.5])


def test_lora_figure_draws_w_b_and_a_to_scale_with_their_counts():
    fig = plot_lora(576, 1536, 64, layer="up_proj", trainable=100, total=400)
    ax = fig.axes[0]
    assert [(p.get_label(), p.get_width(), p.get_height()) for p in ax.patches] == [
        ("W", 1536, 576), ("B", 64, 576), ("A", 1536, 64)]
    texts = [t.get_text() for t in ax.texts]
    assert "W: 576×1536\n884,736 frozen" in texts and "B: 576×64\n36,864 trained" in texts
    assert "A: 64×1536\n98,304 trained" in texts
    assert ax.get_title() == ("LoRA on up_proj, rank 64: 135,168 trained weights instead of 884,736 (15%)\n"
                              "whole model: 100 trained of 400 (25.0%)")
    with pytest.raises(CourseError, match="positive"):
        plot_lora(576, 576, 0)
