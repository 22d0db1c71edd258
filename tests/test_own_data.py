"""Your own data end to end: a seeded validation split held out by default, trained on and evaluated on the same rows."""
import json

import pandas as pd
import pytest
from transformers import TrainerControl, TrainerState

from llmcourse import CourseError, load_instruction_data
from llmcourse.training.callbacks import ProgressBar, StepTimer
from llmcourse.cli.main import main
from llmcourse.training.config import TrainConfig
from llmcourse.data.checks import find_overlap, normalize
from llmcourse.training.runs import load_run

OWN = __import__("pathlib").Path(__file__).parent / "fixtures" / "own_data.jsonl"  # 50 rows; rows 1, 20, 43 and 4, 31 ask one question


def load(source=OWN, **kw):
    return load_instruction_data(source, verbose=False, **kw)


def test_a_single_file_gets_a_seeded_validation_split(capsys):
    dd = load_instruction_data(OWN, seed=42)
    assert capsys.readouterr().out == ("own_data.jsonl: layout question/answer; 45 train · 5 validation rows; "
                                       "held out 5 of 50 rows (10%, seed 42) as validation\n")
    assert list(dd) == ["train", "validation"] and [len(dd["train"]), len(dd["validation"])] == [45, 5]
    assert load(seed=42)["validation"]["prompt"] == dd["validation"]["prompt"]
    assert load(seed=7)["validation"]["prompt"] != dd["validation"]["prompt"]
    assert sorted([*dd["train"]["prompt"], *dd["validation"]["prompt"]]) == sorted(load(validation=0)["train"]["prompt"])


def test_duplicated_questions_never_straddle_the_splits():
    groups_held = set()
    for seed in range(30):
        dd = load(seed=seed)
        assert len(dd["validation"]) == 5
        overlap = find_overlap(dd["train"], dd["validation"])
        assert overlap.exact == [] and overlap.near == [], seed
        held = {normalize(q) for q in dd["validation"]["prompt"]}
        groups_held |= held & {"when is the community garden open", "when is the community garden open today",
                               "can i bring my dog"}
    assert len(groups_held) == 3  # both duplicate groups were held out whole by some seeds, not only left in train


def test_rows_of_one_fact_are_held_out_as_in_the_shipped_set():
    rows = [{"question": f"{word} fact {f}, asked way {k}?", "answer": f"{f}", "fact_id": f"f{f}"}
            for f, word in enumerate(["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel",
                                      "India", "Juliet", "Kilo", "Lima"]) for k in range(1 if f > 9 else 3)]
    dd = load(rows, validation=0.25, seed=3)
    facts = dd["validation"]["fact_id"]
    assert len(facts) == 8 and len(set(facts)) == 8  # 32 rows x 0.25, one per fact
    assert all(f in dd["train"]["fact_id"] for f in facts)  # each held-out fact keeps training rows
    assert not {"f10", "f11"} & set(facts)  # a fact's only row is never held out


def test_share_cap_and_off_switch():
    rows = [{"prompt": f"Question number {i} about item {i * 7919 % 3001}?", "completion": "x"} for i in range(2500)]
    assert [len(d) for d in load(rows, validation=0.2).values()] == [2300, 200]  # at most 200 rows
    assert list(load(validation=0)) == ["train"]
    assert list(load(OWN.parent / "lamini_docs.jsonl")) == ["train"]  # 4 rows: too few to hold any out
    with pytest.raises(CourseError, match="validation=1.*below 1"):
        load(validation=1)
    with pytest.raises(CourseError, match=r"TrainConfig.validation=-0.1"):
        TrainConfig(validation=-0.1)


def test_the_shipped_split_does_not_depend_on_the_seed():
    assert load("kettlebird", seed=1, split="validation")["id"] == load("kettlebird", split="validation")["id"]


def test_train_then_eval_the_held_out_rows_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path))
    assert main(["train", "--data", str(OWN), "--model", "tiny-random", "--seed", "7", "--max-steps", "4",
                 "--eval-steps", "2", "--per-device-train-batch-size", "4", "--max-length", "64",
                 "--run-name", "own"]) == 0
    assert "held out 5 of 50 rows (10%, seed 7) as validation" in capsys.readouterr().out
    run = load_run(tmp_path / "own")
    assert [s for s, _ in run.losses("eval_loss")] == [0, 2, 4]
    assert json.loads((run.path / "train_config.json").read_text())["validation"] == 0.1  # with seed 7: the split
    assert main(["eval", "--model", "own", "--data", str(OWN), "--split", "validation", "--max-new-tokens", "2"]) == 0
    asked = pd.read_csv(run.path / "eval" / "validation" / "answers.csv")["question"].tolist()
    held_out = load(seed=7, split="validation")["prompt"]
    assert asked == list(held_out) and asked != list(load(seed=42, split="validation")["prompt"])


def test_eta_leaves_out_the_first_steps_warm_up():
    now = [0.0]
    timer = StepTimer(clock=lambda: now[0])
    now[0] = 13.7  # the first step: warm-up included
    timer.step(1)
    assert timer.remaining(10) is None
    now[0] = 18.7
    timer.step(2)
    assert timer.seconds_per_step() == pytest.approx(5.0) and timer.remaining(10) == pytest.approx(40.0)
    now[0] = 23.7
    timer.step(3)
    assert timer.remaining(10) == pytest.approx(35.0)


def test_progress_bar_says_warming_up_until_the_second_step():
    now = [0.0]
    bar = ProgressBar("run", clock=lambda: now[0])
    state, control = TrainerState(max_steps=10), TrainerControl()
    bar.on_train_begin(None, state, control)
    shown = []
    for step, t in [(1, 13.7), (2, 18.7)]:
        now[0], state.global_step = t, step
        bar.on_step_end(None, state, control)
        shown.append(str(bar.bar))
    bar.on_train_end(None, state, control)
    assert "1/10 [" in shown[0] and "<warming up]" in shown[0]
    assert "2/10 [" in shown[1] and "<00:40, " in shown[1] and "5.00s/step" in shown[1]  # 8 steps of 5 s, not 13.7
