"""Widgets: they are a TrainConfig (exact round trip), the preview follows them, Train runs in the background, Stop stops."""
import argparse
import os
import time

import pytest

from llmcourse.config import TrainConfig, add_config_arguments, config_from_args
from llmcourse.widgets import FIELDS, TrainingPanel, config_from_widgets, config_widgets

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
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
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


def test_stop_button_stops_a_run_started_by_the_train_button():
    panel = TrainingPanel(TrainConfig.fast(max_steps=500, eval_steps=0), data=DATA)
    panel.train_button.click()
    assert panel.thread.is_alive() and panel.train_button.disabled and not panel.stop_button.disabled
    deadline = time.time() + 300
    while panel.progress.value < 2 and panel.thread.is_alive() and time.time() < deadline:
        time.sleep(0.05)  # the test thread stays free while training runs, like the kernel
    panel.stop_button.click()
    run = panel.wait(timeout=300)
    assert run.status == "stopped", panel.status.value
    steps = run.history[-1]["step"]
    assert 2 <= steps < 500
    assert (run.path / "checkpoints" / f"checkpoint-{steps}").is_dir()
    assert panel.plot.value[:4] == b"\x89PNG" and "stopped" in panel.status.value
    assert not panel.train_button.disabled and panel.stop_button.disabled


def test_result_trains_with_the_defaults_when_nobody_clicked():
    panel = TrainingPanel(TrainConfig.fast(max_steps=2), data=DATA)
    run = panel.result()
    assert run.status == "finished" and run.config == panel.config()
    assert panel.result() is run  # not trained twice


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
