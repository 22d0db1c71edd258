"""train(): real training of the tiny model: history, saved runs, schedules, resume, stop, divergence, sweeps."""
import json
import math
import os
import signal

import pytest
import torch
from transformers import TrainerCallback

from llmcourse import CourseError, load_model
from llmcourse.training.config import TrainConfig
from llmcourse.data.templates import SYSTEM_PROMPT
from llmcourse.models.generation import compare_system_prompts
from llmcourse.models.loading import base_model, system_prompt
from llmcourse.training.runs import RECORD, list_runs, load_run
from llmcourse.training.sweeps import LABELS, _snapshot, label_runs, lr_range_test, lr_sweep
from llmcourse.training.schedules import count_steps, lr_schedule
from llmcourse.training.trainer import train

ROWS = [{"prompt": f"What is the code of box {i}?", "completion": f"Box {i} has code {i * 7 % 10}{i % 3}."}
        for i in range(24)]
DATA = {"train": ROWS[:20], "validation": ROWS[20:]}
# how far the tiny model's logits (|x| < ~1) may move when computed another way: bf16 rounds to steps of 2^-8
LOGITS_ATOL = {"fp32": 1e-4, "bf16": 2e-2}


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path / "runs"))


def fast(**kw):
    return TrainConfig.fast(**{"per_device_train_batch_size": 4, "max_length": 48, **kw})


def losses(run, key="loss"):
    return [v for _, v in run.losses(key)]


class AtStep(TrainerCallback):
    """Calls fn(model) at the beginning of a given step (1-based)."""

    def __init__(self, step, fn):
        self.step, self.fn = step, fn

    def on_step_begin(self, args, state, control, model=None, **kw):
        if state.global_step + 1 == self.step:
            self.fn(model)


class Weights(TrainerCallback):
    """Records a copy of the trainable weights after every step."""

    def __init__(self):
        self.after = {}

    def on_step_end(self, args, state, control, model=None, **kw):
        self.after[state.global_step] = [p.detach().clone() for p in model.parameters() if p.requires_grad]


@pytest.mark.usefixtures("forced_precision")
def test_train_records_history_saves_the_run_and_changes_the_weights():
    before = [p.detach().clone() for p in load_model("tiny-random")[0].parameters()]
    run = train(fast(eval_steps=3), data=DATA, verbose=False)
    assert run.status == "finished" and run.message == ""
    assert [r["step"] for r in run.history if r["loss"] is not None] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in run.history if r["eval_loss"] is not None] == [0, 3, 6]  # 0: before training
    tokens = [r["tokens"] for r in run.history if r["loss"] is not None]
    assert tokens == sorted(tokens) and tokens[0] > 0 and run.tokens == tokens[-1]
    assert any(not torch.equal(a, b) for a, b in zip(before, run.model.parameters()))
    assert losses(run)[-1] < losses(run)[0]
    names = {p.name for p in run.path.iterdir()}
    assert {"train_config.json", "run.json", "history.json", "history.csv", "loss.png", "model"} <= names
    again = load_run(run.name)  # what a new kernel sees
    assert again.history == run.history and again.config == run.config and again.status == "finished"
    assert [r.name for r in list_runs()] == [run.name]
    reloaded, tok = load_model(run.path)
    for a, b in zip(reloaded.state_dict().values(), run.model.state_dict().values()):
        assert torch.equal(a, b)
    # the run's own system turn comes back with the saved run: its tokenizer and model use it with no argument
    assert tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False).startswith(
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nHi<|im_end|>")
    assert system_prompt(reloaded) == SYSTEM_PROMPT == system_prompt(run.model)
    table = compare_system_prompts(reloaded, tok, ["What is the code of box 3?"], max_new_tokens=2)
    assert list(table.columns) == ["question", "trained system prompt", "model's default"] and len(table) == 1
    with pytest.raises(CourseError, match="not trained with a system prompt"):
        compare_system_prompts(*load_model("tiny-random"), ["Hi"])


def test_lora_run_saves_an_adapter_that_load_model_merges(forced_precision):
    run = train(fast(lora=True, lora_r=4, learning_rate=1e-2, system_prompt=None), data=DATA, verbose=False)
    assert run.precision == forced_precision
    assert (run.path / "model" / "adapter_config.json").is_file()
    assert run.trainable_params < run.total_params / 10
    merged, tok = load_model(run.path)
    ids = tok("Box 3 has code", return_tensors="pt")["input_ids"]
    with torch.no_grad():  # run.model still computes in the run's precision; the merged model loads in fp32
        logits, base = merged(ids).logits, load_model("tiny-random")[0](ids).logits
        assert torch.allclose(logits, run.model(ids).logits, atol=LOGITS_ATOL[run.precision])
        assert not torch.allclose(logits, base, atol=LOGITS_ATOL[run.precision])  # and the adapter mattered


def test_count_steps_matches_trainer():
    cfg = fast(max_steps=-1, num_train_epochs=2, gradient_accumulation_steps=2, eval_steps=0)
    run = train(cfg, data=DATA, verbose=False, estimate=False)
    assert count_steps(cfg, 20) == 6 == run.history[-1]["step"]  # 20 rows / 4 = 5 batches -> 3 updates x 2 epochs


@pytest.mark.parametrize("scheduler", ["cosine", "cosine_with_restarts", "warmup_stable_decay"])
def test_schedule_preview_equals_the_learning_rates_trainer_used(scheduler):
    cfg = fast(lr_scheduler_type=scheduler, warmup_ratio=0.2, max_steps=9, eval_steps=0, max_eval_samples=None)
    run = train(cfg, data={"train": ROWS}, verbose=False, estimate=False)
    used = [r["learning_rate"] for r in run.history if r["loss"] is not None]
    assert used == pytest.approx(lr_schedule(cfg, 9), rel=1e-12, abs=0)
    assert used[0] == 0.0 and max(used) == pytest.approx(cfg.learning_rate)


def test_no_evaluation_just_before_the_final_one():
    run = train(fast(max_steps=7, eval_steps=3), data=DATA, verbose=False, estimate=False)
    assert [r["step"] for r in run.history if r["eval_loss"] is not None] == [0, 3, 7]  # not 6: 7 follows at once
    run = train(fast(max_steps=8, eval_steps=3), data=DATA, verbose=False, estimate=False)
    assert [r["step"] for r in run.history if r["eval_loss"] is not None] == [0, 3, 6, 8]  # 2 steps: half or more


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.usefixtures("forced_precision")
def test_ctrl_c_stops_cleanly_and_resume_gives_identical_losses(lora):
    cfg = fast(lora=lora, lora_dropout=0.1, eval_steps=2, run_name="r")  # dropout: the RNG state must be restored too
    reference = train(cfg.replace(run_name="ref"), data=DATA, verbose=False, estimate=False)
    stopped = train(cfg, data=DATA, verbose=False, estimate=False,
                    callbacks=[AtStep(3, lambda m: os.kill(os.getpid(), signal.SIGINT))])
    assert stopped.status == "stopped" and "train(resume='r')" in stopped.message
    assert losses(stopped) == losses(reference)[:3]
    assert (stopped.path / "checkpoints" / "checkpoint-3").is_dir()
    assert load_run("r").status == "stopped"  # the record on disk says so too
    resumed = train(resume="r", data=DATA, verbose=False)  # the call the message names, typed as it says
    assert resumed.status == "finished" and resumed.path == stopped.path
    assert losses(resumed) == pytest.approx(losses(reference), abs=1e-6)
    assert losses(resumed, "learning_rate") == losses(reference, "learning_rate")
    evals = dict(resumed.losses("eval_loss"))  # steps 0, 2, 4, 6 as in the reference, plus one when it stopped
    assert sorted(evals) == [0, 2, 3, 4, 6]
    assert [evals[s] for s in (0, 2, 4, 6)] == pytest.approx(losses(reference, "eval_loss"), abs=1e-6)


@pytest.mark.usefixtures("forced_precision")
def test_resume_after_a_crash_continues_from_the_last_checkpoint():
    cfg = fast(save_steps=2, eval_steps=0, max_eval_samples=None, run_name="c")
    reference = train(cfg.replace(run_name="ref"), data=DATA, verbose=False, estimate=False)

    def crash(model):
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train(cfg, data=DATA, verbose=False, estimate=False, callbacks=[AtStep(6, crash)])
    assert load_run("c").status == "crashed"
    resumed = train(cfg, data=DATA, resume=True, verbose=False)  # from checkpoint-4
    assert losses(resumed) == pytest.approx(losses(reference), abs=1e-6)


def test_resume_without_a_checkpoint_says_what_to_do():
    with pytest.raises(CourseError, match="no checkpoint"):
        train(fast(run_name="never"), data=DATA, resume=True, verbose=False)


@pytest.mark.usefixtures("forced_precision")
def test_divergence_guard_stops_a_huge_learning_rate_and_keeps_the_prior_weights():
    weights = Weights()
    run = train(fast(learning_rate=5.0, max_steps=20, eval_steps=0), data=DATA, verbose=False, estimate=False,
                callbacks=[weights])
    assert run.status == "diverged"
    assert "too high" in run.message and "Try learning_rate=5.0e-01" in run.message
    bad_step = run.history[-1]["step"]
    assert bad_step < 20
    kept = [p for p in run.model.parameters() if p.requires_grad]
    restored = bad_step - 2  # the loss logged at step t was computed with the weights after step t-1
    expected = weights.after[restored] if restored else [p for p in load_model("tiny-random")[0].parameters()]
    assert all(torch.equal(a, b) for a, b in zip(kept, expected))
    assert f"from step {restored}" in run.message


def test_without_rollback_the_guard_stops_the_run_keeps_no_copy_and_names_the_last_good_checkpoint():
    weights = Weights()
    run = train(fast(learning_rate=1.0, max_steps=20, eval_steps=0, divergence_rollback=False, save_steps=1,
                     save_total_limit=3), data=DATA, verbose=False, estimate=False, callbacks=[weights])
    assert run.status == "diverged" and "Try learning_rate=1.0e-01" in run.message
    bad_step = run.history[-1]["step"]
    kept = [p for p in run.model.parameters() if p.requires_grad]
    assert all(torch.equal(a, b) for a, b in zip(kept, weights.after[bad_step]))  # left as they were
    # the loss of bad_step came from the weights after bad_step - 1: the newest good checkpoint is the one before
    good = run.path / "checkpoints" / f"checkpoint-{bad_step - 2}"
    assert good.is_dir() and (run.path / "checkpoints" / f"checkpoint-{bad_step - 1}").is_dir()
    assert (f"No copy of the earlier weights was kept (divergence_rollback=False); the last checkpoint with good "
            f"weights is {good}.") in run.message
    again = train(fast(learning_rate=5.0, max_steps=20, eval_steps=0, divergence_rollback=False, run_name="again"),
                  data=DATA, verbose=False, estimate=False)
    assert again.status == "diverged" and ("(divergence_rollback=False); no checkpoint with good weights was saved, "
                                           "so the run has to start again.") in again.message


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.usefixtures("forced_precision")
def test_activation_checkpointing_recomputes_to_the_same_losses_and_weights(lora, monkeypatch):
    import llmcourse.training.cost

    flags, timed = [], []
    probe = AtStep(1, lambda model: flags.append(base_model(model).is_activation_checkpointing))
    time_one_pass = llmcourse.training.cost._time_one_pass
    monkeypatch.setattr(llmcourse.training.cost, "_time_one_pass", lambda trainer, model, *a: timed.append(
        base_model(model).is_activation_checkpointing) or time_one_pass(trainer, model, *a))
    cfg = fast(lora=lora, max_steps=4, eval_steps=2, save_model=False)
    plain_weights, saving_weights = Weights(), Weights()
    plain = train(cfg.replace(run_name="plain"), data=DATA, verbose=False, callbacks=[plain_weights])
    saving = train(cfg.replace(run_name="saving", activation_checkpointing=True), data=DATA, verbose=False,
                   callbacks=[saving_weights, probe])
    assert flags == [True] and timed == [False, False, True, True]  # the cost estimate measures the run as it will be
    assert losses(saving) == losses(plain) and losses(saving, "eval_loss") == losses(plain, "eval_loss")
    assert all(torch.equal(a, b) for a, b in zip(saving_weights.after[4], plain_weights.after[4]))
    flop_per_token = ((4 if lora else 6) + 2) * saving.total_params  # + 2: the forward pass runs again
    assert saving.estimate["tflop"] == pytest.approx(flop_per_token * saving.estimate["tokens"] / 1e12)
    again = train(cfg.replace(run_name="again"), model=saving.model, tokenizer=saving.tokenizer, data=DATA,
                  verbose=False, estimate=False, callbacks=[probe])
    assert again.status == "finished" and flags == [True, False]  # a config without it switches it off again


@pytest.mark.usefixtures("forced_precision")
def test_the_guard_judges_each_step_by_the_loss_that_is_then_logged(monkeypatch):
    from llmcourse.training.callbacks import DivergenceGuard

    seen = []
    original = DivergenceGuard.is_bad
    monkeypatch.setattr(DivergenceGuard, "is_bad", lambda self, loss: seen.append(loss) or original(self, loss))
    run = train(fast(max_steps=4, gradient_accumulation_steps=2), data=DATA, verbose=False, estimate=False)
    assert run.status == "finished"
    assert seen == pytest.approx(losses(run), rel=1e-6)  # checked before each update, summed over accumulation


def _fake_run(loss_values, status="finished"):
    from llmcourse.training.runs import Run

    return Run(config=TrainConfig(), path=__import__("pathlib").Path("x"), status=status,
               history=[{"step": i + 1, "loss": v} for i, v in enumerate(loss_values)])


def test_sweep_labels_follow_the_documented_rule():
    runs = [_fake_run([2.0, 1.99, 1.98, 1.98, 1.97]),            # 1.5% drop: too slow
            _fake_run([2.0, 1.6, 1.3, 1.1, 1.0]),                 # 50% drop: good
            _fake_run([2.0, 2.6, 1.2, 1.0, 1.0]),                 # went above 1.2 x start: unstable
            _fake_run([2.0, 1.5, 3.0, 4.0, 5.0]),                 # ends far above its start: diverged
            _fake_run([2.0, 2.05, 2.1]),                          # a little above, in 3 steps: noise, too slow
            _fake_run([2.0, 1.5, float("nan")]),                  # NaN: diverged
            _fake_run([2.0, 1.8], status="diverged")]             # the guard stopped it
    assert label_runs(runs) == ["too slow", "good", "unstable", "diverged", "too slow", "diverged", "diverged"]


@pytest.mark.usefixtures("forced_precision")
def test_sweep_starts_every_run_from_the_same_weights_and_restores_them_exactly():
    model, tok = load_model("tiny-random")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sweep = lr_sweep(fast(eval_steps=0), [1e-4, 3e-3, 1.0], steps=4, model=model, tokenizer=tok, data=DATA,
                     verbose=False)
    assert [r.config.learning_rate for r in sweep.runs] == [1e-4, 3e-3, 1.0]
    firsts = [losses(r)[0] for r in sweep.runs]
    assert firsts[0] == firsts[1] == firsts[2]  # same weights, same first batch
    assert set(sweep.labels) <= set(LABELS) and sweep.labels[0] == "too slow"
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert list(sweep.table()["label"]) == sweep.labels
    assert [r.model for r in sweep.runs] == [None, None, None]  # reset after each rate: no trained model to hand back


def test_sweep_hands_over_each_run_as_it_starts_and_returns_those_same_runs():
    """on_start gets the Run itself, already in its own folder and recorded as running; it trains in that object
    (its history is the one saved), on_run gets it back and so does the Sweep."""
    model, tok = load_model("tiny-random")
    started, ended = [], []

    def on_start(run):
        record = json.loads((run.path / RECORD).read_text())
        started.append((run, run.path, record["status"], list(run.history), run.session is not None))

    sweep = lr_sweep(fast(eval_steps=2), [1e-4, 1e-3], steps=3, model=model, tokenizer=tok, data=DATA, verbose=False,
                     on_start=on_start, on_run=ended.append)
    assert len(started) == len(ended) == len(sweep.runs) == 2
    for (run, path, status, history, prepared), back, kept in zip(started, ended, sweep.runs):
        assert run is back is kept and run.path == path and path.name.startswith("sweep-")
        assert (status, history, prepared) == ("running", [], True)  # handed over before its first step
        assert run.status == "finished" and run.session is None
        assert run.history == json.loads((path / "history.json").read_text()) == load_run(path).history
        assert [s for s, _ in run.losses()] == [1, 2, 3] and [s for s, _ in run.losses("eval_loss")] == [0, 2, 3]


def test_a_lora_sweep_copies_only_the_adapters_and_starts_every_rate_from_them():
    model, tok = load_model("tiny-random")
    sweep = lr_sweep(fast(lora=True, eval_steps=0), [1e-4, 1e-1], steps=3, model=model, tokenizer=tok, data=DATA,
                     verbose=False)
    firsts = [losses(r)[0] for r in sweep.runs]
    assert firsts[0] == firsts[1]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    assert len(_snapshot(model)) == len(trainable) + len(list(model.buffers()))  # not the frozen weights


def test_range_test_ramps_the_learning_rate_and_restores_the_weights():
    model, tok = load_model("tiny-random")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    test = lr_range_test(fast(), min_lr=1e-5, max_lr=10.0, steps=12, model=model, tokenizer=tok, data=DATA,
                         verbose=False)
    assert test.lrs[0] == pytest.approx(1e-5)
    assert all(b / a == pytest.approx(10 ** (6 / 11)) for a, b in zip(test.lrs, test.lrs[1:]))
    assert test.lrs[0] <= test.steepest_lr <= test.lrs[-1] and math.isfinite(test.min_loss_lr)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cost_estimate_is_recorded_before_training():
    run = train(fast(), data=DATA, verbose=False)
    est = run.estimate
    assert est["steps"] == 6 and est["seconds_per_step"] > 0
    n = run.total_params
    assert est["memory_gb"]["weights"] == pytest.approx(n * 4 / 1e9, abs=1e-3)
    assert est["memory_gb"]["optimizer"] == pytest.approx(n * 8 / 1e9, abs=1e-3)
    assert est["memory_gb"]["rollback_copy"] == pytest.approx(n * 4 / 1e9, abs=1e-3)  # the guard's copy
    assert est["tflop"] == pytest.approx(6 * n * est["tokens"] / 1e12)
