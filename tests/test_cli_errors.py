"""Malformed input through `python -m llmcourse`: exit 1 or 2, one message naming the file (and line), no traceback.

Most cases call `cli.main` in-process (the same code `python -m llmcourse` runs, seconds instead of minutes on two
cores); a handful run as real subprocesses, where a RecursionError or a crash would show as the interpreter's
own traceback.
"""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from llmcourse.cli.main import main
from llmcourse.training.runs import list_runs

FIX = Path(__file__).parent / "fixtures"
GOOD = '{"question": "What is a kettle?", "answer": "A pot for water."}\n'


def _write_corpus(d: Path) -> None:
    """The malformed files of the corpus (the fixtures are used from tests/fixtures as they are)."""
    (d / "big_field.csv").write_text('question,answer\nq,"' + "x" * 200_000 + '"\nr,s,t\n')  # over csv's 128 KB
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (d / "deep.jsonl").write_text(GOOD + '{"question": "q", "answer": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    (d / "utf16.jsonl").write_bytes(GOOD.encode("utf-16"))
    (d / "null.jsonl").write_text(GOOD + '{"question": "Who?", "answer": null}\n')
    (d / "mixed.jsonl").write_text(GOOD + '{"prompt": "Who?", "completion": "Them."}\n')
    (d / "semicolon.csv").write_text("question;answer\nWhat?;That.\nWho?;Them;extra\n")
    (d / "dup_key.jsonl").write_text(GOOD + '{"question": "Who?", "answer": "A", "answer": "B"}\n')
    (d / "unterminated.jsonl").write_text('{"question": "a", "answer": "b\n')
    (d / "dup_header.csv").write_text("question,answer,answer\na,b,c\n")
    (d / "notes.txt").write_text("hello\n")
    (d / "numbers.json").write_text("[1, 2]\n")
    (d / "a_folder").mkdir()
    (d / "a_file").write_text("mine\n")
    (d / "corrupt_run").mkdir()
    (d / "corrupt_run" / "run.json").write_text("{")
    rows = ["question,answer", *[f"Q{i}?,A{i}." for i in range(40)]]
    rows[5] = 'Q4?,"An answer whose quote never closes.'
    (d / "stray_quote.csv").write_text("\n".join(rows) + "\n")  # the csv module alone would read 35 lines as one answer
    (d / "zero_width.jsonl").write_text(GOOD + '{"question": "\u200b\u200b", "answer": "Something."}\n')
    os.mkfifo(d / "a_fifo.jsonl")
    (d / "not_a_folder").write_text("a file where the runs folder should be\n")
    (d / "three_bad.jsonl").write_text(GOOD + '{"question": "No answer"}\nnot json\n' + GOOD + "[1]\n" + GOOD)


# (case id, argv with {d} for the corpus folder and {f} for tests/fixtures, exit code, what the output must name)
CASES = [
    ("broken-line", ["data", "convert", "{f}/broken.jsonl", "--out", "{d}/o.jsonl"], 2, ["broken.jsonl, line 3"]),
    ("empty", ["data", "inspect", "{f}/empty.jsonl", "--no-tokens"], 2, ["empty.jsonl is empty"]),
    ("empty-field", ["data", "convert", "{f}/empty_field.jsonl", "--out", "{d}/o.jsonl"], 2,
     ["empty_field.jsonl, line 2: field 'answer' is empty"]),
    ("latin1", ["data", "inspect", "{f}/latin1.jsonl", "--no-tokens"], 2, ["latin1.jsonl, line 1", "--encoding latin-1"]),
    ("missing-field", ["data", "convert", "{f}/missing_field.jsonl", "--out", "{d}/o.jsonl"], 2,
     ["missing_field.jsonl, line 2: field 'answer' is missing"]),
    ("non-string", ["data", "convert", "{f}/non_string.jsonl", "--out", "{d}/o.jsonl"], 2, ["non_string.jsonl, line 2"]),
    ("unknown-layout", ["data", "inspect", "{f}/unknown_layout.jsonl", "--no-tokens"], 2,
     ["unknown_layout.jsonl: Unknown layout", "--fields"]),
    ("bad-fields", ["data", "inspect", "{f}/unknown_layout.jsonl", "--no-tokens", "--fields", "prompt=x,completion=a"], 2,
     ["unknown_layout.jsonl: fields: column(s) ['x'] not found"]),
    ("csv-field-over-limit", ["data", "convert", "{d}/big_field.csv", "--out", "{d}/o.jsonl"], 2,
     ["big_field.csv, line 3: 3 values for 2 columns"]),
    ("encoding-klingon", ["data", "inspect", "{f}/qa.csv", "--no-tokens", "--encoding", "klingon"], 2,
     ["encoding 'klingon'", "qa.csv"]),
    ("json-100k-deep", ["data", "inspect", "{d}/deep.json", "--no-tokens"], 2, ["deep.json: JSON nested deeper"]),
    ("jsonl-100k-deep", ["data", "convert", "{d}/deep.jsonl", "--out", "{d}/o.jsonl"], 2, ["deep.jsonl, line 2"]),
    ("utf16", ["data", "inspect", "{d}/utf16.jsonl", "--no-tokens"], 2, ["utf16.jsonl", "UTF-16", "--encoding utf-16"]),
    ("null-field", ["data", "convert", "{d}/null.jsonl", "--out", "{d}/o.jsonl"], 2,
     ["null.jsonl, line 2: field 'answer' is null"]),
    ("mixed-layouts", ["data", "convert", "{d}/mixed.jsonl", "--out", "{d}/o.jsonl"], 2,
     ["mixed.jsonl, line 2", "layout prompt/completion, not question/answer"]),
    ("semicolon-csv", ["data", "convert", "{d}/semicolon.csv", "--out", "{d}/o.jsonl"], 2,
     ["semicolon.csv, line 3: 3 values for 2 columns", "(separated by ';')"]),
    ("duplicate-key", ["data", "convert", "{d}/dup_key.jsonl", "--out", "{d}/o.jsonl"], 2,
     ["dup_key.jsonl, line 2: key 'answer' appears twice"]),
    ("duplicate-column", ["data", "inspect", "{d}/dup_header.csv", "--no-tokens"], 2,
     ["dup_header.csv, line 1: column 'answer' appears twice"]),
    ("unterminated-string", ["data", "inspect", "{d}/unterminated.jsonl", "--no-tokens"], 2,
     ["unterminated.jsonl, line 1: not valid JSON (Unterminated string starting at column 29)"]),
    ("unknown-file-type", ["data", "inspect", "{d}/notes.txt", "--no-tokens"], 2, ["notes.txt: unknown file type"]),
    ("json-array-of-numbers", ["data", "inspect", "{d}/numbers.json", "--no-tokens"], 2, ["numbers.json, item 1"]),
    ("missing-relative-path", ["data", "inspect", "missing/qa.jsonl", "--no-tokens"], 2,
     ["missing/qa.jsonl: no such file or folder"]),
    ("inspect-lists-bad-rows", ["data", "inspect", "{d}/three_bad.jsonl", "--no-tokens"], 1,
     ["three_bad.jsonl, line 2", "three_bad.jsonl, line 3", "three_bad.jsonl, line 5"]),
    ("inspect-max-length-0", ["data", "inspect", "{f}/qa.csv", "--max-length", "0"], 2, ["--max-length 0"]),
    ("convert-into-missing-folder", ["data", "convert", "{f}/qa.csv", "--out", "{d}/nowhere/qa.jsonl"], 2,
     ["nowhere does not exist"]),
    ("convert-onto-a-folder", ["data", "convert", "{f}/qa.csv", "--out", "{d}/a_folder"], 2, ["a_folder is a folder"]),
    ("generate-device-foo", ["generate", "hi", "--model", "tiny-random", "--device", "foo"], 2, ["device='foo'"]),
    ("generate-max-new-tokens-negative", ["generate", "hi", "--model", "tiny-random", "--max-new-tokens", "-3"], 2,
     ["--max-new-tokens -3"]),
    ("generate-missing-model-file", ["generate", "hi", "--model", "missing/model.safetensors"], 2,
     ["missing/model.safetensors: no such model folder"]),
    ("train-broken-data", ["train", "--model", "tiny-random", "--data", "{f}/broken.jsonl", "--max-steps", "1"], 2,
     ["broken.jsonl, line 3", "--skip-bad-rows"]),
    ("train-missing-data", ["train", "--model", "tiny-random", "--data", "missing/qa.jsonl", "--max-steps", "1"], 2,
     ["missing/qa.jsonl: no such file"]),
    ("eval-broken-data", ["eval", "--model", "tiny-random", "--data", "{f}/missing_field.jsonl", "--limit", "1"], 2,
     ["missing_field.jsonl, line 2", "--skip-bad-rows"]),
    ("eval-missing-data", ["eval", "--model", "tiny-random", "--data", "missing/qa.jsonl"], 2,
     ["missing/qa.jsonl: no such file"]),
    # the run store's own messages
    ("train-output-dir-is-a-file", ["train", "--model", "tiny-random", "--data", "{f}/lamini_docs.jsonl", "--max-steps",
                                    "1", "--output-dir", "{d}/a_file"], 2, ["a_file is a file, not a folder"]),
    ("eval-corrupt-run-json", ["eval", "--model", "{d}/corrupt_run", "--limit", "1"], 2,
     ["corrupt_run/run.json, line 1: not valid JSON"]),
    # issue 27: inputs that trained or read on with exit 0, or failed late
    ("csv-unclosed-quote", ["data", "convert", "{d}/stray_quote.csv", "--out", "{d}/o.jsonl"], 2,
     ["stray_quote.csv, line 6: a double quote opened in this row is not closed", "at line 41"]),
    ("zero-width-question", ["data", "convert", "{d}/zero_width.jsonl", "--out", "{d}/o.jsonl"], 2,
     ["zero_width.jsonl, line 2: field 'question' is empty (only invisible characters"]),
    ("train-lora-alpha-0", ["train", "--model", "tiny-random", "--data", "{f}/lamini_docs.jsonl", "--lora",
                            "--lora-alpha", "0"], 2, ["TrainConfig.lora_alpha=0: must be above 0"]),
    ("train-seed-negative", ["train", "--model", "tiny-random", "--data", "{f}/lamini_docs.jsonl", "--seed", "-1"], 2,
     ["TrainConfig.seed=-1: must be a whole number from 0 to 4294967295"]),
    ("inspect-a-fifo", ["data", "inspect", "{d}/a_fifo.jsonl", "--no-tokens"], 2,
     ["a_fifo.jsonl is not a regular file (a pipe, a device or a socket)"]),
    ("train-on-dev-zero", ["train", "--model", "tiny-random", "--data", "/dev/zero", "--max-steps", "1"], 2,
     ["/dev/zero is not a regular file"]),
]
SUBPROCESS = {"json-100k-deep", "missing-relative-path", "generate-device-foo",
              "eval-corrupt-run-json"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    _write_corpus(d)
    return d


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def _argv(argv, d):
    return [a.replace("{d}", str(d)).replace("{f}", str(FIX)) for a in argv]


def _check(case, code, out, err):
    name, _, expected_code, names = case
    text = out + err
    assert "Traceback" not in text, f"{name}: {text[-2000:]}"
    assert code in (1, 2) if expected_code is None else code == expected_code, f"{name}: exit {code}\n{text[-2000:]}"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == (0 if code == 1 and expected_code == 1 else 1), f"{name}: {err}"
    if errors:
        assert err.rstrip().endswith(errors[0]), f"{name}: the error is not the last line: {err}"
    for part in names:
        assert part in text, f"{name}: {part!r} not in {text[-2000:]}"
    assert " at at " not in text


@pytest.mark.parametrize("folder, says", [("{d}/not_a_folder", "is not a folder (a file is in the way)"),
                                          ("/sys/llmcourse-runs", "is not writable (Operation not permitted)")])
def test_a_runs_folder_that_cannot_hold_runs_stops_train_before_anything_loads(folder, says, corpus, monkeypatch,
                                                                                capsys):
    if folder.startswith("/sys") and not Path("/sys/kernel").is_dir():
        pytest.skip("needs Linux's /sys, where even root cannot make a folder")
    monkeypatch.setenv("LLMCOURSE_RUNS", folder.replace("{d}", str(corpus)))
    code = main(["train", "--model", "tiny-random", "--data", str(FIX / "lamini_docs.jsonl"), "--max-steps", "1"])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and says in err and "LLMCOURSE_RUNS" in err, err
    assert out == ""  # refused before the model, the data or a timed step


def test_generate_takes_a_run_by_its_name(runs, capsys):
    assert main(["train", "--model", "tiny-random", "--data", str(FIX / "lamini_docs.jsonl"), "--max-steps", "1",
                 "--run-name", "named", "--quiet", "--eval-steps", "0"]) == 0
    capsys.readouterr()
    assert main(["generate", "hi", "--model", "named", "--max-new-tokens", "2"]) == 0
    err = capsys.readouterr().err
    assert "(named: loaded in" in err and "error" not in err  # the run's model/ folder, found by its name
    assert main(["generate", "hi", "--model", "unnamed"]) == 2
    assert "'unnamed' is not a model llmcourse knows" in capsys.readouterr().err


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 25 and SUBPROCESS <= {c[0] for c in CASES}


@pytest.mark.parametrize("case", [c for c in CASES if c[0] not in SUBPROCESS], ids=lambda c: c[0])
def test_malformed_input_in_process(case, corpus, runs, capsys):
    code = main(_argv(case[1], corpus))
    out, err = capsys.readouterr()
    _check(case, code, out, err)


def test_malformed_input_as_real_commands(corpus, runs):
    """`python -m llmcourse ...` itself, in parallel: the interpreter would print any traceback that escaped."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parent.parent),
                                                                      os.environ.get("PYTHONPATH")])))
    cases = [c for c in CASES if c[0] in SUBPROCESS]

    def run(case):
        return subprocess.run([sys.executable, "-m", "llmcourse", *_argv(case[1], corpus)], capture_output=True,
                              text=True, env=env, cwd=corpus, timeout=300)

    with ThreadPoolExecutor(len(cases)) as pool:
        for case, p in zip(cases, pool.map(run, cases)):
            _check(case, p.returncode, p.stdout, p.stderr)


def test_inspect_lists_three_bad_rows_and_still_draws_the_histogram(corpus, capsys):
    assert main(["data", "inspect", str(corpus / "three_bad.jsonl"), "--model", "tiny-random"]) == 1
    out = capsys.readouterr().out
    listed = out.split("3 bad rows:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert listed == ["  three_bad.jsonl, line 2: field 'answer' is missing",
                      "  three_bad.jsonl, line 3: not valid JSON (Expecting value at column 1)",
                      '  three_bad.jsonl, line 5: a JSON list, not an object {...}; each line must be like '
                      '{"question": ..., "answer": ...}']
    assert "all 3 rows): min" in out  # the 3 good rows, tokenized
    histogram = [line for line in out.splitlines() if "█" in line]
    assert len(histogram) == 1 and histogram[0].endswith(" 3")  # all three good rows have the same length
    assert "train: 3 rows: 2 exact duplicates" in out


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    """A real fault nobody turned into a CourseError: writing to a full disk (/dev/full)."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux)")
    argv = ["data", "convert", str(FIX / "qa.csv"), "--out", "/dev/full", "--force"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == ("error: data convert failed: OSError: [Errno 28] No space left on device "
                   "(run again with --debug for the traceback)\n")
    for debug in (["--debug", *argv], [*argv, "--debug"]):  # before or after the command
        assert main(debug) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last):" in err and err.endswith(
            "OSError: [Errno 28] No space left on device\n")


def test_course_errors_stay_exit_2_with_debug_adding_the_traceback(capsys):
    assert main(["data", "inspect", str(FIX / "empty.jsonl"), "--no-tokens"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["data", "inspect", str(FIX / "empty.jsonl"), "--no-tokens", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("error: ") and "empty.jsonl is empty" in err


def test_skip_bad_rows_lets_train_and_eval_go_on(runs, capsys):
    args = ["--model", "tiny-random", "--data", str(FIX / "missing_field.jsonl")]
    assert main(["eval", *args, "--split", "train", "--max-new-tokens", "2", "--no-loss", "--skip-bad-rows"]) == 0
    report = json.loads((runs / "eval" / "tiny-random" / "train" / "metrics.json").read_text())
    assert report["metrics"]["train"]["n"] == 1  # the one good row was asked, the bad one skipped
    assert main(["train", *args, "--max-steps", "1", "--eval-steps", "0", "--max-eval-samples", "None",
                 "--run-name", "skipping", "--skip-bad-rows", "--quiet", "--no-save-model"]) == 0
    [run] = list_runs()
    assert run.config.skip_bad_rows is True and run.status == "finished"
