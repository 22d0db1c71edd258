"""A run survives what users do to it: SIGTERM and Ctrl-C end it with a checkpoint, a full disk is refused before
training, the final model is whole or absent, and twins started together never share a folder."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmcourse import CourseError
from llmcourse.training import runs as run_store
from llmcourse.training.config import TrainConfig
from llmcourse.training.runs import list_runs, load_run
from llmcourse.training.trainer import train

ROWS = [{"question": f"What is the code of box {i}?", "answer": f"Box {i} has code {i * 7 % 10}{i % 3}."}
        for i in range(24)]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def start(runs, *args):
    env = {**os.environ, "LLMCOURSE_RUNS": str(runs)}
    return subprocess.Popen([sys.executable, "-m", "llmcourse", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_until_training(runs, name, proc, timeout=600):
    """Until the run's record says running (it is written right before the first step)."""
    record = runs / name / "run.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if record.is_file() and json.loads(record.read_text())["status"] == "running":
            time.sleep(1.0)  # into the steps
            return
        time.sleep(0.1)
    raise AssertionError(f"no run started: {proc.communicate()}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_run_after_the_current_step_with_a_checkpoint(sig, runs, data):
    args = ["--model", "tiny-random", "--data", str(data), "--max-steps", "400", "--per-device-train-batch-size", "2",
            "--eval-steps", "0", "--run-name", "signalled", "--lora"]
    proc = start(runs, *args)
    wait_until_training(runs, "signalled", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=600)
    assert "Traceback" not in out + err
    assert proc.returncode == (-signal.SIGTERM if sig == signal.SIGTERM else 0), (proc.returncode, err[-2000:])
    run = load_run("signalled")
    assert run.status == "stopped" and not run.died
    step = run.history[-1]["step"]
    assert 0 < step < 400 and (run.path / "checkpoints" / f"checkpoint-{step}" / "optimizer.pt").is_file()
    assert f"`python -m llmcourse train --resume signalled` continues exactly from here" in run.message
    assert (run.path / "model" / "adapter_model.safetensors").is_file() and not (run.path / "model.partial").exists()


def test_a_disk_too_small_for_the_save_is_refused_before_training(runs, data, monkeypatch):
    needed = []
    monkeypatch.setattr(run_store, "free_bytes", lambda path: needed.append(path) or 10 * 2**20)
    config = TrainConfig.fast(model="tiny-random", data=str(data), save_steps=1, run_name="big")
    with pytest.raises(CourseError, match=r"Not enough disk space for this run: .* has 10 MB free, and the run will "
                                          r"write about \d+ MB"):
        train(config, verbose=False, estimate=False)
    assert needed == [runs / "big"] and not (runs / "big").exists()  # refused before a step; the name is free again
    config = config.replace(lora=True, save_steps=0)  # an adapter and one checkpoint fit in 10 MB
    assert run_store.disk_needed(config, trainable=1000, total=10**6) == 4000 + 12_000
    assert train(config, verbose=False, estimate=False).status == "finished"


def test_the_final_model_is_saved_whole_or_not_at_all(runs, data, monkeypatch):
    """A save cut off (here: the disk fills while the weights are written) leaves no model/ that looks complete."""
    import transformers

    def full_disk(self, *args, **kw):
        raise OSError(28, "No space left on device")

    config = TrainConfig.fast(model="tiny-random", data=str(data), run_name="cut")
    monkeypatch.setattr(transformers.Trainer, "save_model", full_disk)
    with pytest.raises(OSError):
        train(config, verbose=False, estimate=False)
    assert not (runs / "cut" / "model").exists() and load_run("cut").status == "crashed"
