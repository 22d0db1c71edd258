"""The README's commands are the ones CI and users run."""
import json
import re
import shlex
from pathlib import Path

from llmcourse.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def _commands(text):
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_ci_runs_the_readme_test_command():
    readme = _commands((ROOT / "README.md").read_text())
    assert len(readme) >= 2
    assert readme[0] == "./setup_kernel.sh && .venv/bin/jupyter lab notebooks/"
    test_command = readme[1]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == test_command, ".ci/run must end with the README's test command, verbatim"


def test_every_notebook_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"`{nb.stem}`" in readme, f"{nb.name} is missing from the README's notebook table"


def test_the_own_data_commands_train_and_evaluate_the_held_out_rows(tmp_path, monkeypatch):
    section = (ROOT / "README.md").read_text().split("## Your own data")[1].split("\n## ")[0]
    train, evaluate = _commands(section)
    fixture, prefix = str(ROOT / "tests" / "fixtures" / "own_data.jsonl"), ".venv/bin/python -m llmcourse "
    assert train.startswith(prefix + "train ") and evaluate.startswith(prefix + "eval ")
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path))
    fast = ["--model", "tiny-random", "--max-steps", "2", "--eval-steps", "1", "--max-length", "64", "--quiet"]
    assert main(shlex.split(train.replace("my_data.jsonl", fixture))[3:] + fast) == 0
    assert main(shlex.split(evaluate.replace("my_data.jsonl", fixture))[3:] + ["--max-new-tokens", "2"]) == 0
    assert (tmp_path / "my-run" / "loss.png").is_file() and (tmp_path / "my-run" / "history.csv").is_file()
    report = json.loads((tmp_path / "my-run" / "eval" / "validation" / "metrics.json").read_text())
    assert report["metrics"]["validation"]["n"] == 5
