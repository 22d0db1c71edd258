"""Plots: smoothing values, live frames (throttled, silent outside notebooks), schedule previews, run comparison."""
import math
from pathlib import Path

import pytest

from llmcourse import CourseError
from llmcourse.training.config import TrainConfig
from llmcourse.notebook.charts import compare_runs, plot_schedule
from llmcourse.plots.figures import Comparison, plot_history, plot_runs, smooth
from llmcourse.training.callbacks import LivePlot
from llmcourse.training.runs import Run
from llmcourse.training.schedules import lr_schedule

HISTORY = [{"step": 1, "epoch": 0.5, "tokens": 100, "learning_rate": 1e-4, "loss": 3.0},
           {"step": 2, "epoch": 1.0, "tokens": 210, "learning_rate": 1e-4, "loss": 2.0},
           {"step": 2, "epoch": 1.0, "tokens": 210, "eval_loss": 2.5},
           {"step": 3, "epoch": 1.5, "tokens": 300, "learning_rate": 5e-5, "loss": 1.0}]


def make_run(tmp_path, name="a", history=HISTORY, **kw):
    run = Run(config=TrainConfig(run_name=name), path=Path(tmp_path) / name, history=history, status="finished",
              seconds=60.0, tokens=300, **kw)
    run.save()
    return run


def test_smooth_is_a_debiased_moving_average():
    assert smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no dip towards 0 at the start
    assert smooth([1.0, 3.0], 0.5) == pytest.approx([1.0, 1.75 / 0.75])
    assert smooth([1.0, 3.0], 0.0) == [1.0, 3.0]
    with_nan = smooth([1.0, float("nan"), 3.0], 0.5)
    assert math.isnan(with_nan[1]) and with_nan[2] == pytest.approx(1.75 / 0.75)  # NaN shown, then skipped


def test_history_plot_has_loss_and_learning_rate_panels(tmp_path):
    run = make_run(tmp_path)
    fig = plot_history(run, save=tmp_path / "loss.png")
    loss_ax, lr_ax = fig.axes
    labels = [line.get_label() for line in loss_ax.lines]
    assert labels == ["train loss, each step", "train loss, smoothed", "validation loss"]  # the faint line too
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == labels
    assert list(lr_ax.lines[0].get_ydata()) == [1e-4, 1e-4, 5e-5]
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_history_plot_by_tokens_and_log_scale(tmp_path):
    fig = plot_history(make_run(tmp_path), x="tokens", log_scale=True)
    assert fig.axes[0].get_yscale() == "log"
    assert list(fig.axes[0].lines[0].get_xdata()) == [100, 210, 300]


def test_empty_history_still_plots(tmp_path):
    assert len(plot_history(make_run(tmp_path, history=[])).axes) == 2


@pytest.mark.parametrize("start", [0.0, 1e6])  # a monotonic clock counts from any point, e.g. the boot
def test_live_plot_sends_throttled_frames_and_a_final_one(tmp_path, start):
    clock = [start]
    frames = []
    live = LivePlot("t", show=frames.append, every=10.0, clock=lambda: clock[0])

    class State:
        log_history = HISTORY
        global_step, max_steps = 3, 10

    sent = []
    for _ in range(25):  # a log every second; showing a frame takes no (fake) time
        live.on_log(None, State, None)
        sent.append(len(frames))
        clock[0] += 1.0
    assert sent == [1] * 10 + [2] * 10 + [3] * 5  # the first log at once, then one frame per `every` seconds
    live.finish(make_run(tmp_path))
    assert len(frames) == 4 and all(f[:4] == b"\x89PNG" for f in frames)


def test_live_plot_keeps_drawing_to_a_twentieth_of_the_time():
    clock = [100.0]
    frames = []

    def show(png):  # each frame costs 0.5 s of (fake) time
        clock[0] += 0.5
        frames.append(png)

    live = LivePlot("t", show=show, every=2.0, clock=lambda: clock[0])
    asked = []
    for _ in range(12):  # a log every second
        if live.due():
            asked.append(clock[0])
            live.draw(HISTORY, "x")
        clock[0] += 1.0
    assert live.cost == 0.5
    assert asked == [100.0, 110.5]  # 0.5 s / 0.05 = 10 s after the first frame ended (100.5), not 2 s
    assert len(frames) == 2


def test_live_plot_is_silent_outside_notebooks():
    live = LivePlot("t")
    assert live.enabled is False
    live.draw(HISTORY, "x")  # nothing to show, nothing raised


def test_schedule_preview_plots_what_trainer_will_use():
    cfg = TrainConfig(learning_rate=1e-3, warmup_ratio=0.1, lr_scheduler_type="cosine")
    fig = plot_schedule(cfg, 50, schedulers=["cosine", "linear", "constant"])
    assert [ax.get_title() for ax in fig.axes] == ["cosine", "linear", "constant"]  # small multiples
    lines = [ax.lines[0] for ax in fig.axes]
    assert all(len(ax.lines) == 1 for ax in fig.axes) and fig.axes[0].get_shared_y_axes().joined(*fig.axes[:2])
    assert list(lines[0].get_ydata()) == lr_schedule(cfg, 50)
    assert list(lines[0].get_xdata()) == list(range(1, 51))  # steps count from 1, as in a run's history
    assert set(lines[2].get_ydata()) == {1e-3}  # constant: no warmup
    assert fig.get_suptitle() == "peak 0.001, warmup 0.1, 50 steps"


def test_six_schedules_make_two_rows_of_three_with_the_labels_outside():
    cfg = TrainConfig(learning_rate=1e-3, warmup_ratio=0.1)
    names = ["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "warmup_stable_decay"]
    fig = plot_schedule(cfg, 40, schedulers=names)
    assert [ax.get_title() for ax in fig.axes] == names and not any(ax.get_legend() for ax in fig.axes)
    assert [ax.get_xlabel() for ax in fig.axes] == [""] * 3 + ["optimizer step"] * 3
    assert [ax.get_ylabel() for ax in fig.axes] == ["learning rate", "", ""] * 2
    five = plot_schedule(cfg, 40, schedulers=names[:5])  # the last column's lowest axes is in the first row
    assert [ax.get_xlabel() for ax in five.axes] == ["", "", "optimizer step"] + ["optimizer step"] * 2


def test_one_schedule_has_a_fixed_pixel_size_whatever_its_numbers():
    import io

    from matplotlib.image import imread

    from llmcourse.notebook.charts import PREVIEW_DPI, PREVIEW_SIZE
    from llmcourse.plots.figures import figure_png

    sizes = set()
    for cfg, n in ((TrainConfig(learning_rate=1e-3), 12), (TrainConfig(learning_rate=3.3e-5, warmup_ratio=0.25), 1200)):
        fig = plot_schedule(cfg, n)
        assert len(fig.axes) == 1 and fig.axes[0].get_title().startswith(f"{cfg.lr_scheduler_type}: peak")
        sizes.add(imread(io.BytesIO(figure_png(fig, dpi=PREVIEW_DPI, tight=False))).shape[:2])
    assert sizes == {(round(PREVIEW_SIZE[1] * PREVIEW_DPI), round(PREVIEW_SIZE[0] * PREVIEW_DPI))} == {(480, 880)}


def test_the_overlay_legend_sits_outside_the_axes_one_entry_per_run_and_per_line_style():
    other = [dict(r, loss=r.get("loss") and r["loss"] + 1) for r in HISTORY]
    fig = plot_runs([HISTORY, other], labels=["#1", "#2"], colors=["#ff0000", "#0000ff"])
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "#1", "#2", "train loss, each step", "train loss, smoothed", "validation loss"]
    assert [h.get_color() for h in legend.legend_handles] == ["#ff0000", "#0000ff", "grey", "grey", "grey"]
    assert legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # right of the axes: covers no curve
    assert [line.get_label() for line in ax.lines] == [
        f"#{n} {what}" for n in (1, 2) for what in ("train loss, each step", "train loss, smoothed", "validation loss")]
    no_eval = plot_runs([HISTORY], labels=["#1"], eval_=False).axes[0].get_legend()
    assert [t.get_text() for t in no_eval.get_texts()] == ["#1", "train loss, each step", "train loss, smoothed"]


def test_compare_runs_overlays_saved_runs_with_a_table(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path))
    make_run(tmp_path, "a")
    make_run(tmp_path, "b", history=HISTORY[:2])
    cmp = compare_runs(x="epoch", smoothing=0.0)  # every saved run
    assert isinstance(cmp, Comparison)
    assert list(cmp.table["run"]) == ["a", "b"]
    assert cmp.table["eval loss"].iloc[0] == 2.5 and cmp.table["eval loss"].isna().iloc[1]
    assert cmp.table["tokens/s"].tolist() == [5, 5]
    html = cmp._repr_html_()
    assert html.startswith('<img src="data:image/png;base64,') and "<table" in html
    a_train = [line for line in cmp.figure.axes[0].lines if line.get_label() == "a train loss, smoothed"][0]
    assert list(a_train.get_xdata()) == [0.5, 1.0, 1.5] and list(a_train.get_ydata()) == [3.0, 2.0, 1.0]
    with pytest.raises(CourseError, match="x='time'"):
        compare_runs("a", x="time")
