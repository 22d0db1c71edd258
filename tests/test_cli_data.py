"""`python -m llmcourse data inspect|convert` on the fixtures and the shipped set."""
import json
from pathlib import Path

import pytest

from llmcourse.cli.main import main
from llmcourse.cli.data import text_histogram

FIX = Path(__file__).parent / "fixtures"


def test_text_histogram_exact():
    assert text_histogram([1, 1, 2, 4], bins=2, width=4, limit=2).splitlines() == [
        "     1–2      ████ 3", "     3–4     !█    1"]


@pytest.mark.parametrize("name, layout", [("lamini_docs.jsonl", "question/answer"), ("alpaca.json", "instruction/input/output"),
                                          ("sharegpt.jsonl", "conversations"), ("qa.csv", "question/answer")])
def test_inspect_each_layout(capsys, name, layout):
    assert main(["data", "inspect", str(FIX / name), "--model", "tiny-random", "--max-length", "30"]) == 0
    out = capsys.readouterr().out
    assert f"layout {layout}" in out and "token lengths (tiny-random tokenizer" in out
    assert "max_length 30:" in out and "rows truncated" in out and "duplicates" in out


def test_inspect_shipped_set_without_tokens(capsys):
    assert main(["data", "inspect", "kettlebird", "--no-tokens"]) == 0
    out = capsys.readouterr().out
    assert "layout question/answer" in out and "test vs train:" in out


def test_inspect_reports_duplicates(capsys):
    main(["data", "inspect", str(FIX / "duplicates.jsonl"), "--no-tokens"])
    assert "train: 4 rows: 2 exact duplicates" in capsys.readouterr().out


def test_broken_file_prints_line_numbered_error(tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert main(["data", "convert", str(FIX / "broken.jsonl"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {FIX / 'broken.jsonl'}, line 3: not valid JSON") and "--skip-bad-rows" in err
    assert main(["data", "convert", str(FIX / "broken.jsonl"), "--out", str(out), "--skip-bad-rows"]) == 0
    assert "3 train rows, 1 bad rows skipped" in capsys.readouterr().out


def test_inspect_lists_bad_rows_and_exits_1_unless_told_to_skip(capsys):
    assert main(["data", "inspect", str(FIX / "broken.jsonl"), "--no-tokens"]) == 1
    out = capsys.readouterr().out
    assert "1 bad rows:\n  broken.jsonl, line 3: not valid JSON (Expecting value at column 39)\n" in out
    assert "train: 3 rows: 0 exact duplicates" in out  # the good rows are still checked
    assert main(["data", "inspect", str(FIX / "broken.jsonl"), "--no-tokens", "--skip-bad-rows"]) == 0


def test_unknown_layout_then_fields(capsys):
    assert main(["data", "inspect", str(FIX / "unknown_layout.jsonl"), "--no-tokens"]) == 2
    assert "Unknown layout" in capsys.readouterr().err
    assert main(["data", "inspect", str(FIX / "unknown_layout.jsonl"), "--no-tokens", "--fields", "prompt=q,completion=a"]) == 0


def test_convert_round_trips(tmp_path, capsys):
    out = tmp_path / "a.jsonl"
    assert main(["data", "convert", str(FIX / "alpaca.json"), "--to", "jsonl", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0] == {"prompt": "Translate to French.\n\nGood morning", "completion": "Bonjour"}
    assert main(["data", "convert", str(FIX / "alpaca.json"), "--out", str(out)]) == 2  # exists: no overwrite
    assert "--force" in capsys.readouterr().err
    for fmt in ("csv", "parquet", "json"):
        dest = tmp_path / f"a.{fmt}"
        assert main(["data", "convert", str(out), "--to", fmt, "--out", str(dest)]) == 0
        assert main(["data", "inspect", str(dest), "--no-tokens"]) == 0


def test_convert_keeps_splits(tmp_path, monkeypatch):
    import llmcourse.data.loading as data
    monkeypatch.setattr(data, "shipped_dir", lambda: FIX / "kettlebird_mini")
    out = tmp_path / "k.jsonl"
    assert main(["data", "convert", "kettlebird", "--out", str(out)]) == 0
    splits = [json.loads(line)["split"] for line in out.read_text().splitlines()]
    assert splits.count("validation") == 1 and splits.count("unseen") == 2
    assert main(["data", "convert", "kettlebird", "--to", "csv", "--out", str(tmp_path / "k.csv")]) == 0
