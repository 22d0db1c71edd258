"""Low-memory mode: one setting picks the memory savers; doctor weighs each notebook's need against free RAM."""
import pytest

from llmcourse.course import doctor
from llmcourse.course.check_course import course_notebooks
from llmcourse.models.loading import load_model
from llmcourse.training import lowmem
from llmcourse.training.config import TrainConfig
from llmcourse.training.trainer import train

ROWS = [{"prompt": f"What is the code of box {i}?", "completion": f"Box {i} has code {i % 7}."} for i in range(12)]


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(lowmem, "_announced", False)


@pytest.mark.parametrize("setting, available, expected", [("1", 64.0, True), ("0", 1.0, False),
                                                          ("", 6.4, True), ("", 6.5, False)])
def test_the_setting_wins_and_unset_means_less_than_6_5_gb_available(monkeypatch, setting, available, expected):
    monkeypatch.setenv("LLMCOURSE_LOW_MEMORY", setting)
    assert lowmem.low_memory(available) is expected


def test_savers_are_applied_once_said_once_and_left_out_when_off(monkeypatch, capsys):
    monkeypatch.setenv("LLMCOURSE_LOW_MEMORY", "0")
    config = TrainConfig.fast()
    assert lowmem.with_savers(config) is config
    monkeypatch.setenv("LLMCOURSE_LOW_MEMORY", "1")
    saved = lowmem.with_savers(config)
    assert (saved.activation_checkpointing, saved.divergence_rollback) == (True, False)
    assert lowmem.with_savers(config.replace(lora=True)).lora  # everything else stays as given
    assert capsys.readouterr().out == ("Low-memory mode (LLMCOURSE_LOW_MEMORY=1): activation checkpointing on, no "
                                       "rollback copy of the weights, trained models kept on disk, not in memory; "
                                       "same losses, slower steps.\n")


def test_train_in_low_memory_mode_records_the_savers_and_gives_the_same_losses(monkeypatch, capsys):
    config = TrainConfig.fast(max_length=32, max_steps=3, eval_steps=0, per_device_train_batch_size=4,
                              precision="fp32")
    monkeypatch.setenv("LLMCOURSE_LOW_MEMORY", "0")
    normal = train(config, data={"train": ROWS}, plot=False, verbose=False)
    monkeypatch.setenv("LLMCOURSE_LOW_MEMORY", "1")
    low = train(config, data={"train": ROWS}, plot=False)
    assert "Low-memory mode (LLMCOURSE_LOW_MEMORY=1)" in capsys.readouterr().out
    assert (normal.config.activation_checkpointing, low.config.activation_checkpointing) == (False, True)
    assert low.config.divergence_rollback is False
    assert [v for _, v in low.losses("loss")] == pytest.approx([v for _, v in normal.losses("loss")], abs=1e-5)
    assert normal.model is not None and low.model is None  # low-memory: the trained model is in its folder only
    saved, _ = load_model(low.path)
    assert saved.num_parameters() == low.total_params
    given, tok = load_model("tiny-random")
    assert train(config, model=given, tokenizer=tok, data={"train": ROWS}, plot=False).model is given  # caller's


def test_ram_per_notebook_names_the_notebooks_that_do_not_fit(monkeypatch):
    monkeypatch.setattr(lowmem, "NOTEBOOK_PEAK_GB", {"00_setup": (1.0, 0.9), "03_training": (6.1, 3.5)})
    ok, detail, fix = lowmem.ram_per_notebook(4.0, low=False)
    assert not ok
    assert detail == "normal mode, 4.0 GB available; needs: 00 1.0, 03 6.1 (short)"
    assert fix == ("Close other programs until 6.1 GB are available, or set LLMCOURSE_LOW_MEMORY=1 (activation "
                   "checkpointing, no rollback copy); or pair with a neighbour for 03_training.")
    assert lowmem.ram_per_notebook(4.0, low=True) == (True, "low-memory mode, 4.0 GB available; needs: 00 0.9, 03 3.5", "")


def test_doctor_lists_every_notebook_and_never_fails_on_it():
    check = doctor.check_ram_per_notebook()
    assert not check.required
    listed = [part.split()[0] for part in check.detail.split("needs: ")[1].split(", ")]
    assert listed == [path.name[:2] for path in course_notebooks()] == ["00", "01", "02", "03", "04", "05"]


def test_doctor_accepts_a_learner_install_without_the_test_tools(monkeypatch, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("pytest==9.2.0\nnot-installed-tool==1.0  # tests: only CI\nnot-installed-lib==1.0  # 03\n")
    monkeypatch.setattr(doctor, "requirements_file", lambda: req)
    check = doctor.check_packages()
    assert check.detail == "not-installed-lib missing (want 1.0)"
