"""Fast mode is decided inside the library: the presets and limits the notebooks call shrink themselves."""
import pytest

from llmcourse import CourseError, TrainConfig, question_set, run_cli
from llmcourse.core.fastmode import capped


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv("LLMCOURSE_FAST", "1")


def test_capped_limits_only_in_fast_mode(monkeypatch):
    assert [capped(v, 3) for v in (None, -1, 2, 30)] == [None, -1, 2, 30]
    monkeypatch.setenv("LLMCOURSE_FAST", "1")
    assert [capped(v, 3) for v in (None, -1, 0, 2, 3, 30)] == [3, 3, 3, 2, 3, 3]


def test_laptop_preset_shrinks_in_fast_mode_and_overrides_only_shrink_it(fast):
    c = TrainConfig.laptop(num_train_epochs=3)
    assert (c.max_steps, c.max_eval_samples, c.eval_steps, c.num_train_epochs, c.lora) == (3, 8, 2, 3, True)
    c = TrainConfig.laptop(max_steps=2, max_eval_samples=4, eval_steps=0, run_name="x")
    assert (c.max_steps, c.max_eval_samples, c.eval_steps, c.run_name) == (2, 4, 0, "x")


def test_laptop_preset_is_unchanged_for_a_learner():
    c = TrainConfig.laptop(max_steps=30, eval_steps=10)
    assert (c.max_steps, c.max_eval_samples, c.eval_steps) == (30, 32, 10)
    assert TrainConfig.laptop().max_steps == -1


def test_question_set_caps_a_limit_in_fast_mode_but_not_all_rows(monkeypatch):
    everything = len(question_set("kettlebird", "test"))
    assert len(question_set("kettlebird", ("test", "unseen"), limit=8)) == 16
    monkeypatch.setenv("LLMCOURSE_FAST", "1")
    assert len(question_set("kettlebird", ("test", "unseen"), limit=8)) == 6
    assert len(question_set("kettlebird", "test")) == everything


def test_run_cli_runs_an_argument_list_and_reports_failure_in_one_line(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path / "runs with spaces"))
    assert run_cli(["runs"]) == 0
    assert run_cli(["runs", "show", "no-such-run"], check=False) == 2
    assert "error: " in capfd.readouterr().out
    with pytest.raises(CourseError, match=r"exited with code 2"):
        run_cli(["runs", "show", "no-such-run"])
    with pytest.raises(CourseError, match="a list of arguments"):
        run_cli("runs")
