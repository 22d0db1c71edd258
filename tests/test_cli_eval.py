"""`python -m llmcourse eval`: metrics table printed, JSON report written, runs found by name, errors in one line."""
import json

import pytest

from llmcourse.cli.main import main
from llmcourse.cli.eval import resolve_model
from llmcourse.training.config import TrainConfig
from llmcourse.training.trainer import train


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_eval_prints_the_table_and_writes_json(runs, capsys):
    assert main(["eval", "--model", "tiny-random", "--split", "test,unseen", "--limit", "2", "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "exact_match" in line)
    assert header.split() == ["n", "exact_match", "token_f1", "rouge_l", "key_fact", "loss", "perplexity"]
    report_file = runs / "eval" / "tiny-random" / "test+unseen" / "metrics.json"
    assert f"Report: {report_file}" in out
    report = json.loads(report_file.read_text())
    assert report["metrics"]["test"]["n"] == 2 and report["metrics"]["all"]["n"] == 4
    assert set(report["metrics"]["all"]) >= {"exact_match", "token_f1", "rouge_l", "key_fact", "loss", "perplexity"}


def test_eval_on_a_run_uses_its_template_and_saves_under_it(runs, capsys):
    run = train(TrainConfig.fast(template="qa", run_name="tiny-qa"), verbose=False, estimate=False)
    target, saved = resolve_model("tiny-qa")
    assert target == str(run.path) and saved.config.template == "qa"
    assert main(["eval", "--model", "tiny-qa", "--limit", "2", "--max-new-tokens", "2", "--retrieval", "--no-loss"]) == 0
    report = json.loads((run.path / "eval" / "test-retrieval" / "metrics.json").read_text())
    assert report["name"] == "tiny-qa" and "loss" not in report["metrics"]["all"]
    assert report["info"]["template"] == "qa"  # answered in the format it was trained on
    assert resolve_model("smollm2-135m-instruct") == ("smollm2-135m-instruct", None)


def test_eval_errors_are_one_line(runs, capsys):
    assert main(["eval", "--model", "tiny-random", "--split", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The data has no split 'nope'") and err.count("\n") == 1
    assert main(["eval", "--model", "tiny-random", "--limit", "0"]) == 2
