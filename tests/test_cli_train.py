"""`python -m llmcourse train`: flags are TrainConfig fields, runs land in runs/, errors are one line."""
import json
import os
import subprocess
import sys

import pytest

from llmcourse import generate, load_model
from llmcourse.training.runs import load_run


def cli(*args, runs, timeout=1200):
    env = {**os.environ, "LLMCOURSE_RUNS": str(runs)}
    return subprocess.run([sys.executable, "-m", "llmcourse", "train", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_cli_trains_and_resumes_a_run(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": f"Code of door {i}?", "answer": f"Door {i}: {i * 3}."}) + "\n"
                            for i in range(12)))
    args = ["--model", "tiny-random", "--data", str(data), "--max-steps", "4", "--per-device-train-batch-size", "2",
            "--learning-rate", "1e-3", "--lora", "--save-steps", "2", "--output-dir", str(tmp_path / "runs" / "x")]
    done = cli(*args, runs=tmp_path / "runs")
    assert done.returncode == 0, done.stderr
    assert "x: finished after 4 steps" in done.stdout
    assert "Cost estimate" in done.stdout
    run = load_run(tmp_path / "runs" / "x")
    assert run.config.lora and run.config.learning_rate == 1e-3 and run.config.max_steps == 4
    assert [s for s, _ in run.losses()] == [1, 2, 3, 4]
    assert (run.path / "model" / "adapter_config.json").is_file()
    more = cli(*args[:-2], "--max-steps", "4", "--output-dir", str(run.path), "--resume", "--quiet", runs=tmp_path)
    assert more.returncode == 0, more.stderr


def test_cli_reports_bad_input_in_one_line(tmp_path):
    done = cli("--model", "tiny-random", "--warmup-ratio", "1.5", runs=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: TrainConfig.warmup_ratio=1.5")


def overlap(answer: str, reference: str) -> float:
    """Token F1 against the reference: recall alone (the share of reference words said) rewards a long, rambling
    answer over a short one in the reference's own words."""
    from llmcourse.evaluation.metrics import token_f1

    return token_f1(answer, reference)


@pytest.mark.slow
def test_thirty_steps_on_the_shipped_data_lower_eval_loss_and_change_answers(tmp_path):
    done = cli("--lora", "--lora-r", "64", "--lora-alpha", "64", "--learning-rate", "1e-3", "--max-steps", "30",
               "--eval-steps", "30", "--max-eval-samples", "32", "--run-name", "cli30", "--compile", "auto",
               runs=tmp_path)
    assert done.returncode == 0, done.stderr
    decision = [line for line in done.stdout.splitlines() if line.startswith("  compile: ")]
    assert len(decision) == 1 and " (auto): 30 steps x " in decision[0]  # the estimate says what auto chose, and why
    run = load_run(tmp_path / "cli30")
    assert run.compiled == decision[0].startswith("  compile: on")
    evals = run.losses("eval_loss")
    assert [s for s, _ in evals] == [0, 15, 30] and evals[-1][1] < evals[0][1]  # a short run evaluates 3 times
    from llmcourse.data.loading import load_instruction_data

    train_rows = load_instruction_data("kettlebird", split="train", verbose=False).select(range(0, 60, 6))
    questions, references = train_rows["prompt"], train_rows["completion"]
    base = generate(*load_model("smollm2-135m-instruct"), questions, max_new_tokens=32)
    tuned = generate(*load_model(run.path), questions, max_new_tokens=32)
    assert sum(b != t for b, t in zip(base, tuned)) >= 8
    assert sum(map(overlap, tuned, references)) > sum(map(overlap, base, references))
