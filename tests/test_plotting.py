"""Plots: smoothing values, live frames (throttled, silent outside notebooks), schedule previews, run comparison."""
import math
from pathlib import Path

import pytest

from llmcourse import CourseError
from llmcourse.training.config import TrainConfig
from llmcourse.notebook.charts import compare_runs, plot_schedule
from llmcourse.plots.figures import Comparison, plot_history, smooth
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
    assert "train" in labels and "eval" in labels
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
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == ["cosine", "linear", "constant"]
    assert list(lines[0].get_ydata()) == lr_schedule(cfg, 50)
    assert list(lines[0].get_xdata()) == list(range(1, 51))  # steps count from 1, as in a run's history
    assert set(lines[2].get_ydata()) == {1e-3}  # constant: no warmup


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
    a_train = [line for line in cmp.figure.axes[0].lines if line.get_label() == "a train"][0]
    assert list(a_train.get_xdata()) == [0.5, 1.0, 1.5] and list(a_train.get_ydata()) == [3.0, 2.0, 1.0]
    with pytest.raises(CourseError, match="x='time'"):
        compare_runs("a", x="time")
