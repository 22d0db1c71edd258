"""A run survives what users do to it: a full disk is refused before training, and the final model is whole or
absent. (Kills, Ctrl-C and SIGTERM at chosen points: tests/test_fault_injection.py.)"""
import json

import pytest

from llmcourse import CourseError
from llmcourse.training import runs as run_store
from llmcourse.training.config import TrainConfig
from llmcourse.training.runs import load_run
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


def test_a_ctrl_c_during_the_timed_step_gives_the_run_name_back(runs, data, monkeypatch):
    from llmcourse.training import trainer as course_trainer

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(course_trainer, "estimate_cost", interrupted)
    config = TrainConfig.fast(model="tiny-random", data=str(data), run_name="early")
    with pytest.raises(KeyboardInterrupt):
        train(config, verbose=False)
    assert not (runs / "early").exists()  # no empty folder left to push the next run to "early-2"
