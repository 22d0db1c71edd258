"""Widgets: they are a TrainConfig (exact round trip), the preview follows them, Train runs in the background, Stop
stops and Resume continues; the panel keeps every run in a list, overlays the checked ones, sweeps and asks them."""
import argparse
import json
import os
import re
import threading
import time

import pytest
from transformers import TrainerCallback

from llmcourse.cli import train as train_command
from llmcourse.training.config import TrainConfig, config_from_args, field_help
from llmcourse.models.generation import generate
from llmcourse.models.loading import load_model
from llmcourse.plots.figures import run_color, smooth
from llmcourse.training.sweeps import LABELS
from llmcourse.notebook import widgets
from llmcourse.notebook.widgets import (FIELDS, PLACEHOLDER, STARTING, STOPPING, PanelRun, TrainingPanel,
                                        config_from_widgets, config_widgets, dead_controls, sweep_rates)
from llmcourse.training.runs import RECORD, Run
from llmcourse.training.config import eval_interval, eval_points

ROWS = [{"prompt": f"Which shelf holds item {i}?", "completion": f"Item {i} is on shelf {i % 5}."} for i in range(24)]
DATA = {"train": ROWS[:20], "validation": ROWS[20:]}


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path / "runs"))


def test_config_widgets_round_trip_exactly():
    cfg = TrainConfig(learning_rate=3e-4, lr_scheduler_type="warmup_stable_decay", warmup_ratio=0.15,
                      num_train_epochs=2.5, max_steps=40, per_device_train_batch_size=4, gradient_accumulation_steps=3,
                      lora=True, lora_r=32, precision="fp32")
    controls = config_widgets(cfg)
    assert set(controls) == set(FIELDS)
    assert config_from_widgets(controls, TrainConfig()) == cfg


def test_moving_a_widget_changes_the_config_and_the_cli_sees_the_same():
    controls = config_widgets(TrainConfig())
    controls["learning_rate"].value = 1e-3
    controls["lora"].value = True
    controls["lr_scheduler_type"].value = "linear"
    cfg = config_from_widgets(controls, TrainConfig())
    assert (cfg.learning_rate, cfg.lora, cfg.lr_scheduler_type) == (1e-3, True, "linear")
    parser = argparse.ArgumentParser(parents=train_command.parents())  # as the CLI builds `llmcourse train`
    train_command.add_arguments(parser)
    assert config_from_args(parser.parse_args(cfg.to_args())) == cfg  # widgets -> config -> CLI flags -> config


def test_learning_rate_slider_is_logarithmic_from_1e6_to_1e2():
    slider = config_widgets(TrainConfig())["learning_rate"]
    assert (slider.base, slider.min, slider.max) == (10, -6, -2)
    assert "Peak learning rate" in slider.tooltip


def test_preview_redraws_when_a_slider_moves():
    panel = TrainingPanel(TrainConfig.fast(max_steps=-1, num_train_epochs=2), data=DATA)
    assert panel.num_steps() == 10  # 20 rows / batch 4 x 2 epochs
    first = panel.preview.value
    panel.controls["lr_scheduler_type"].value = "cosine"
    assert panel.preview.value != first and panel.preview.value[:4] == b"\x89PNG"
    panel.controls["per_device_train_batch_size"].value = 2
    assert panel.num_steps() == 20


@pytest.fixture
def attached(monkeypatch):
    """Every Run a line of the panel receives from prepare_run, with what its folder's record said at that moment."""
    seen = []
    attach = PanelRun.attach

    def recording(entry, run):
        seen.append({"entry": entry, "run": run, "path": run.path, "history": list(run.history), "seconds": run.seconds,
                     "record": json.loads((run.path / RECORD).read_text())["status"]})
        attach(entry, run)

    monkeypatch.setattr(PanelRun, "attach", recording)
    return seen


def assert_shows_what_was_saved(entry, run):
    """The line holds `run` itself, and shows the history the run saved in history.json."""
    saved = json.loads((run.path / "history.json").read_text())
    assert entry.run is run and run.history == saved and saved
    row, losses = entry.row(), [r["loss"] for r in saved if r["loss"] is not None]
    assert (row["steps"], row["last step"], row["status"].split(" ")[0]) == (saved[-1]["step"], round(losses[-1], 4),
                                                                              run.status)


def wait_for_step(panel, step):
    deadline = time.time() + 300
    while panel.progress.value < step and panel.thread.is_alive() and time.time() < deadline:
        time.sleep(0.05)  # the test thread stays free while training runs, like the kernel


def test_stop_says_so_at_once_and_resume_continues_the_same_run(attached):
    panel = TrainingPanel(TrainConfig.fast(max_steps=40, eval_steps=0), data=DATA)
    panel.train_button.click()
    assert panel.thread.is_alive() and panel.train_button.disabled and not panel.stop_button.disabled
    wait_for_step(panel, 2)
    (first,) = attached
    assert panel.entries[0].run is first["run"] and first["record"] == "running"  # the real run, while it trains
    panel.stop_button.click()
    assert panel.status.value == STOPPING and panel.stop_button.disabled  # at once, before the step ends
    run = panel.wait(timeout=300)
    assert run.status == "stopped", panel.status.value
    steps = run.history[-1]["step"]
    assert 2 <= steps < 40
    assert (run.path / "checkpoints" / f"checkpoint-{steps}").is_dir()
    assert f"train(resume='{run.name}')" in panel.status.value
    assert panel.plot.value[:4] == b"\x89PNG" and not panel.train_button.disabled and panel.stop_button.disabled
    assert not panel.resume_button.disabled and "run #1" in panel.resume_button.tooltip
    assert run is first["run"] and run.path == first["path"]
    assert_shows_what_was_saved(panel.entries[0], run)
    panel.resume_button.click()
    resumed = panel.wait(timeout=300)
    assert [e.run for e in panel.entries] == [resumed]  # the same line of the list, not a new run
    again = attached[1]
    assert again["run"] is resumed and again["entry"] is panel.entries[0] and again["path"] == run.path
    assert again["history"] == run.history and again["record"] == "running"  # it goes on from the stopped history
    assert again["seconds"] == run.seconds > 0  # and from its time (the line's time column)
    assert_shows_what_was_saved(panel.entries[0], resumed)
    assert (resumed.status, resumed.path, resumed.history[-1]["step"]) == ("finished", run.path, 40)
    assert [s for s, _ in resumed.losses()] == list(range(1, 41))  # the curve goes on where it stopped
    assert panel.resume_button.disabled and panel.entries[0].row()["status"] == "finished"


def test_a_line_holds_the_run_train_saves_from_its_start_and_shows_its_saved_history(attached):
    cfg = TrainConfig.fast(max_steps=3, eval_steps=2, learning_rate=2e-4)
    queued = PanelRun(1, cfg)  # before prepare_run returns there is no Run: the line shows the config it will train
    assert queued.run is None and queued.label == "#1 lr 2.0e-04"
    assert queued.row() == {"#": 1, "learning rate": "2.0e-04", "train loss, smoothed": None, "last step": None,
                            "validation loss": None, "steps": 0, "time": "0 s", "status": "queued", "run": ""}
    panel = TrainingPanel(cfg, data=DATA)
    panel.train_button.click()
    run = panel.wait(timeout=300)
    (start,) = attached
    assert start["run"] is run and start["entry"] is panel.entries[0]
    assert (start["path"], start["record"], start["history"]) == (run.path, "running", [])  # its folder, from step 0
    assert run.status == "finished" and panel.runs == [run]
    assert_shows_what_was_saved(panel.entries[0], run)
    assert panel.entries[0].row()["validation loss"] == round(run.final_eval_loss, 4)
    assert panel.figure().axes[0].get_legend().get_texts()[0].get_text() == "#1 lr 2.0e-04"


class _Boom(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        raise RuntimeError("boom at step 1")


def test_a_crash_shows_in_the_line_whether_the_run_had_started_or_not(monkeypatch, attached):
    panel = TrainingPanel(TrainConfig.fast(max_steps=3, eval_steps=0), data=DATA)
    callbacks = panel._callbacks
    monkeypatch.setattr(panel, "_callbacks", lambda: [*callbacks(), _Boom()])
    panel.train_button.click()
    panel.wait(timeout=300)
    (start,) = attached
    run = panel.entries[0].run
    assert run is start["run"] and run.status == "crashed" and "boom at step 1" in panel.status.value
    assert json.loads((run.path / RECORD).read_text())["status"] == "crashed"  # what fit recorded, as shown
    assert panel.entries[0].row()["status"] == "crashed" and panel.entries[0].row()["run"] == ""

    def no_start(*a, **kw):
        raise RuntimeError("no model today")

    monkeypatch.setattr(widgets, "prepare_run", no_start)
    panel.train_button.click()
    panel.wait(timeout=60)
    assert (panel.entries[1].run, panel.entries[1].row()["status"]) == (None, "crashed")  # it never got a Run
    stopped = Run(config=panel.config(), path=start["path"].parent / "a-stopped-run", status="stopped")
    stopped.save()
    panel.entries[1].attach(stopped)  # as if that line had trained and been stopped
    panel.resume_button.click()
    panel.wait(timeout=60)
    assert "no model today" in panel.status.value
    assert panel.entries[1].run is stopped and panel.entries[1].status == "stopped"  # unchanged: resume may be tried
    assert not panel.resume_button.disabled


def test_controls_that_do_nothing_are_disabled_with_the_reason_as_tooltip():
    assert dead_controls(TrainConfig.laptop()) == {}
    panel = TrainingPanel(TrainConfig.fast(max_steps=6), data=DATA, bf16_native=True)
    epochs, rank = panel.controls["num_train_epochs"], panel.controls["lora_r"]
    assert (epochs.disabled, rank.disabled) == (True, True)
    assert epochs.tooltip == ("Not used: max_steps=6 sets the length of the run. Set max steps to -1 to train by "
                              "epochs.")
    assert rank.tooltip == "Not used: LoRA is off. Tick lora to train adapters of this rank."
    panel.controls["max_steps"].value = -1
    panel.controls["lora"].value = True
    assert (epochs.disabled, rank.disabled) == (False, False)
    assert (epochs.tooltip, rank.tooltip) == (field_help("num_train_epochs"), field_help("lora_r"))


@pytest.mark.parametrize("native, precision, warned", [(False, "bf16", True), (False, "auto", False),
                                                        (False, "fp32", False), (True, "bf16", False)])
def test_bf16_warns_only_where_it_is_emulated(native, precision, warned):
    panel = TrainingPanel(TrainConfig.fast(), data=DATA, bf16_native=native)
    panel.controls["precision"].value = precision
    assert ("bf16 is emulated on this CPU" in panel.warning.value) is warned
    assert (panel.warning.value == "") is not warned


def test_before_the_first_run_the_plot_area_holds_text_not_an_empty_image():
    panel = TrainingPanel(TrainConfig.fast(max_steps=2, eval_steps=0), data=DATA)
    (shown,) = panel.plot_area.children
    assert shown.value == PLACEHOLDER and "No run yet" in PLACEHOLDER and panel.plot.value == b""
    gate = threading.Event()
    panel._start(lambda: gate.wait(60))  # a run that is still loading its model: the plot area says so at once
    assert panel.plot_area.children[0].value == STARTING and "loading the model" in STARTING
    assert panel.status.value.startswith("starting: loading the model")
    gate.set()
    panel.wait(60)
    assert panel.plot_area.children[0].value == PLACEHOLDER  # it ended without a curve: "No run yet" again
    panel.train_button.click()
    panel.wait(300)
    assert panel.plot_area.children == (panel.plot,) and panel.plot.value[:4] == b"\x89PNG"
    asked = threading.Event()

    def answers(run, prompts):
        asked.set()
        gate.clear()
        gate.wait(60)
        return ["an answer"] * len(prompts)

    panel._answers, panel.questions = answers, [{"question": "q?", "reference": "r"}] * 3
    panel.ask_button.click()
    asked.wait(60)
    assert "asking run #1 (1 of 1) 3 questions" in panel.answers.value  # under the button, while it works
    assert panel.status.value.startswith("asking run #1") and panel.ask_button.disabled
    gate.set()
    panel.wait(60)
    assert panel.answers.value.count("an answer") == 3


def test_a_short_run_evaluates_at_least_three_times():
    assert eval_points(10, 12) == [0, 12] and eval_interval(10, 12) == 6  # 10 is within half an interval of 12
    assert [eval_points(eval_interval(e, n), n) for e, n in ((10, 12), (2, 3), (50, 14), (25, 76), (1, 1))] == [
        [0, 6, 12], [0, 2, 3], [0, 7, 14], [0, 25, 50, 76], [0, 1]]
    assert eval_interval(0, 12) == 0  # 0 = only at the end, as asked
    panel = TrainingPanel(TrainConfig.fast(max_steps=4, eval_steps=3), data=DATA)  # 3 is within half of 4
    run = panel.result()
    assert [s for s, _ in run.losses("eval_loss")] == eval_points(2, 4) == [0, 2, 4]  # what Trainer really did


def test_the_panel_keeps_every_run_overlays_the_checked_ones_and_tables_them():
    panel = TrainingPanel(TrainConfig.fast(max_steps=3, eval_steps=3), data=DATA)
    runs = []
    for lr in (1e-3, 1e-4):
        panel.controls["learning_rate"].value = lr
        panel.train_button.click()
        runs.append(panel.wait(timeout=300))
    assert panel.runs == runs and [r.config.learning_rate for r in runs] == [1e-3, 1e-4]
    first, second = runs
    rows = [e.row() for e in panel.entries]
    assert all(re.fullmatch(r"\d+ s", row.pop("time")) for row in rows)  # wall time: its form only
    losses = [[v for _, v in r.losses()] for r in runs]
    assert rows == [{"#": i + 1, "learning rate": lr, "train loss, smoothed": round(smooth(loss, 0.9)[-1], 4),
                     "last step": round(loss[-1], 4), "validation loss": round(r.final_eval_loss, 4), "steps": 3,
                     "status": "finished", "run": r.name}
                    for i, (r, lr, loss) in enumerate(zip(runs, ("1.0e-03", "1.0e-04"), losses))]
    assert all(len(loss) == 3 for loss in losses)  # the smoothed value is the end of the bold line, not the last step
    assert run_color(1) in panel.entries[1].cells.value and run_color(0) not in panel.entries[1].cells.value
    ax = panel.figure().axes[0]
    bold = [line for line in ax.lines if line.get_label() == "#1 lr 1.0e-03 train loss, smoothed"]
    assert round(float(bold[0].get_ydata()[-1]), 4) == rows[0]["train loss, smoothed"]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["#1 lr 1.0e-03", "#2 lr 1.0e-04", "train loss, each step",
                                                          "train loss, smoothed", "validation loss"]
    assert [h.get_color() for h in legend.legend_handles][:2] == [run_color(0), run_color(1)]
    assert first.model is None and second.model is not None  # only the newest run keeps its model in memory
    before = panel.plot.value
    panel.entries[0].checkbox.value = False  # unticking redraws the plot without that run
    assert panel.plot.value != before
    assert [t.get_text() for t in panel.figure().axes[0].get_legend().get_texts()][0] == "#2 lr 1.0e-04"


def test_the_sweep_adds_three_runs_around_the_current_learning_rate(attached):
    assert sweep_rates(1e-3) == [1e-3 / 3, 1e-3, 3e-3]
    panel = TrainingPanel(TrainConfig.fast(max_steps=2, eval_steps=0, learning_rate=1e-3), data=DATA)
    panel.sweep_button.click()
    assert panel.train_button.disabled and panel.sweep_button.disabled
    panel.wait(timeout=300)
    assert panel.error is None, panel.error
    rows = [e.row() for e in panel.entries]
    assert [r["learning rate"] for r in rows] == ["3.3e-04", "1.0e-03", "3.0e-03"]
    assert [r["steps"] for r in rows] == [2, 2, 2]
    assert all(r["status"].startswith("finished (sweep): ") and r["status"].split(": ")[1] in LABELS for r in rows)
    assert all((run.path / "model").is_dir() for run in panel.runs)  # so they can be asked questions
    assert [a["entry"] for a in attached] == panel.entries  # each line got its Run as prepare_run returned it ...
    for a, entry in zip(attached, panel.entries):
        assert (a["record"], a["history"], a["path"].name[:6]) == ("running", [], "sweep-")  # ... before step 1
        assert_shows_what_was_saved(entry, a["run"])  # ... and it is the run that was saved
    assert panel.status.value.startswith("Sweep done. Suggested learning rate:")


def test_stop_during_a_sweep_stops_its_run_and_skips_the_rest():
    panel = TrainingPanel(TrainConfig.fast(max_steps=40, eval_steps=0), data=DATA)
    panel.sweep_button.click()
    wait_for_step(panel, 2)
    panel.stop_button.click()
    panel.wait(timeout=300)
    assert [e.status for e in panel.entries] == ["stopped", "not run", "not run"]
    assert [e.run is None for e in panel.entries] == [False, True, True] and len(panel.runs) == 1
    assert [e.row()["run"] for e in panel.entries] == [panel.runs[0].name, "", ""]
    assert not panel.resume_button.disabled and "run #1" in panel.resume_button.tooltip


@pytest.mark.slow
def test_ask_shows_the_answers_of_every_checked_run_side_by_side():
    """The bundled model (tiny-random only answers blank lines): each checked run answers 3 test questions."""
    panel = TrainingPanel(TrainConfig.fast(model="smollm2-135m-instruct", lora=True, max_steps=1, eval_steps=0),
                          data=DATA)
    assert panel.ask_button.disabled  # nothing to ask yet
    for lr in (1e-4, 1e-3, 1e-2):
        panel.controls["learning_rate"].value = lr
        panel.train_button.click()
        panel.wait(timeout=300)
    panel.entries[0].checkbox.value = False
    panel.ask_button.click()
    panel.wait(timeout=600)
    assert panel.error is None, panel.error
    _, second, third = panel.runs
    questions = [q["question"] for q in panel.questions]
    assert questions[0] == "Kettlebird has been around since which year?" and len(questions) == 3  # the test split
    assert second.model is None and third.model is not None  # the newest run only is in memory
    from_disk = generate(*load_model(second.path / "model"), questions, max_new_tokens=48)
    in_memory = generate(third.model, third.tokenizer, questions, max_new_tokens=48)
    assert panel.answer_table == [{"question": q, "#2 lr 1.0e-03": a, "#3 lr 1.0e-02": b}
                                  for q, a, b in zip(questions, from_disk, in_memory)]
    html = panel.answers.value
    assert html.count("data-run='2'") == 3 and html.count("data-run='3'") == 3 and "data-run='1'" not in html


def test_result_trains_with_the_defaults_when_nobody_clicked():
    panel = TrainingPanel(TrainConfig.fast(max_steps=2), data=DATA)
    run = panel.result()
    assert run.status == "finished" and run.config == panel.config()
    assert panel.result() is run and panel.runs == [run]  # not trained twice, and in the list


def test_a_bad_value_shows_in_the_panel_not_as_a_traceback():
    panel = TrainingPanel(TrainConfig.fast(), data=DATA)
    panel.controls["max_steps"].value = 0
    assert "max_steps" in panel.status.value
    panel.controls["max_steps"].value = 4
    assert panel.status.value == "Set the hyperparameters, then press Train."


def test_clicks_reach_a_real_kernel_while_the_panel_trains(tmp_path):
    """The frontend's path: clicks arrive as comm messages while the kernel's training thread runs."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="llm", startup_timeout=120, cwd=str(tmp_path),
                              env={**os.environ, "LLMCOURSE_RUNS": str(tmp_path / "runs")})

    def run(code: str) -> str:
        out = []

        def keep(msg):  # stdout of this cell (the training thread may write warnings to stderr meanwhile)
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])

        reply = kc.execute_interactive(code, timeout=300, output_hook=keep)
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out).strip().splitlines()[-1]

    def click(button_id: str) -> None:  # exactly what the browser sends when a button is pressed
        kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": button_id, "data": {
            "method": "custom", "content": {"event": "click"}}}))

    try:
        ids = run(f"from llmcourse import TrainConfig, training_panel\nrows = {ROWS!r}\n"
                  "panel = training_panel(TrainConfig.fast(max_steps=500, eval_steps=0), "
                  "data={'train': rows[:20], 'validation': rows[20:]})\n"
                  "print(panel.train_button.model_id, panel.stop_button.model_id)")
        train_id, stop_id = ids.split()
        click(train_id)
        deadline = time.time() + 300
        while int(run("print(panel.progress.value)") or 0) < 2:  # the kernel answers while it trains
            assert time.time() < deadline, "training did not start"
            time.sleep(0.5)
        click(stop_id)
        status = run("run = panel.wait(300)\nprint(run.status, run.history[-1]['step'])")
        state, steps = status.split()
        assert state == "stopped" and 2 <= int(steps) < 500
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
