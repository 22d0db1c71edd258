"""bench: the arithmetic on hand-made numbers, the missing-TRL message, and one real run of every recipe on tiny-random.

No timing is asserted anywhere: the benchmark's numbers belong to the machine, the tests check the plumbing.
"""
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from llmcourse.course import bench
from llmcourse.cli.main import main

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
HAS_TRL = importlib.util.find_spec("trl") is not None
PEAKS = {"device": "cpu", "n": 2048, "fp32": 100.0, "bf16": 5.0, "bf16_vs_fp32": 0.05}


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def test_summarize_gives_steady_tokens_per_second_and_the_mean_loss_of_the_last_quarter(scripts):
    from speedmeter import summarize

    s = summarize([9.0, 2.0, 1.0, 1.0, 2.0], [100, 100, 100, 100, 100], [4.0, 3.0, 2.5, 2.0, 1.0])
    assert (s["steps"], s["tokens"], s["train_seconds"]) == (5, 500, 15.0)
    assert (s["warmup_steps"], s["warmup_seconds"]) == (2, 11.0)  # the first two steps, apart
    assert (s["tokens_per_s"], s["s_per_step"], s["median_step_s"]) == (75.0, 1.333, 2.0)  # 300 tokens in 4 s
    assert (s["final_loss"], s["final_loss_steps"]) == (1.5, 2)  # ceil(5 / 4) = 2 last steps
    short = summarize([3.0, 1.0, 1.0], [50, 50, 50], [2.0, 1.0, 1.0])  # too few steps to leave any out
    assert (short["warmup_steps"], short["tokens_per_s"], short["s_per_step"]) == (0, 30.0, 1.667)


def test_answer_tokens_count_up_to_and_including_the_first_stop_token(scripts):
    from generation_speed import answer_tokens

    new = torch.tensor([[5, 6, 2, 2, 2], [7, 8, 9, 10, 11], [2, 2, 2, 2, 2], [3, 4, 0, 9, 2]])
    assert answer_tokens(new, {2}) == [3, 5, 1, 5]
    assert answer_tokens(new, {0, 2}) == [3, 5, 1, 3]


def _run(precision="fp32", tps=100.0, loss=2.0, rss=1000.0, params=1_000_000):
    return {"precision": precision, "tokens_per_s": tps, "final_loss": loss, "peak_rss_mb": rss, "params": params,
            "batch_size": 8, "grad_accum": 1, "s_per_step": 1.0, "label": "x"}


def test_mfu_is_six_params_tokens_over_the_peak_of_the_runs_precision():
    run = _run(tps=1000.0, params=1_000_000)
    bench.add_mfu(run, PEAKS)
    assert (run["mfu"], run["peak_gflops"]) == (0.06, 100.0)  # 6e9 FLOP/s of a 100 GFLOP/s peak
    run = _run("bf16", tps=100.0)
    bench.add_mfu(run, PEAKS)
    assert run["mfu"] == 0.12


def test_compare_gives_ratios_and_says_which_targets_hold():
    runs = {"A": _run(tps=10.0, loss=3.0), "B": _run("bf16", tps=40.0, loss=2.5), "C": _run(tps=130.0, loss=2.4),
            "D": _run(tps=150.0, loss=2.6, rss=1600.0), "CM": _run(tps=100.0, rss=2900.0), "DM": _run(rss=1400.0),
            "R": _run(tps=160.0)}
    bench.add_mfu(runs["C"], PEAKS)
    gen = {"speedup": 6.0, "questions": 100, "answer_seconds": 75.0}
    ratios, targets = bench.compare(runs, gen, PEAKS)
    assert ratios == {"C/R": 0.81, "D/R": 0.94, "C/B": 3.25, "C/A": 13.0, "D/C": 1.15}
    holds = {t["target"]: t["holds"] for t in targets}
    assert holds == {"tokens/s C/R >= 0.85x": False, "tokens/s C/B >= 3x": True, "tokens/s C/A >= 6x": True,
                     "tokens/s D/C >= 1.5x": False,
                     "C final loss <= B final loss": True, "C MFU >= 45% of the bf16 peak": None,
                     "C peak RSS <= 3 GB": True, "D peak RSS <= 1.5 GB": False,
                     "CM peak RSS <= 3 GB": False, "DM peak RSS <= 1.5 GB": True,  # 2900 MiB = 3.04 GB
                     "generation batch 16 >= 5x batch 1 tokens/s": True,
                     "100 held-out questions answered in <= 60 s": False}
    assert next(t["note"] for t in targets if "C/B" in t["target"]) == "emulated bf16"
    mfu_note = next(t["note"] for t in targets if "MFU" in t["target"])
    assert "no fast bf16 here" in mfu_note and "the fp32 peak is 1%" in mfu_note


def test_the_mfu_target_is_judged_against_the_bf16_peak_where_bf16_is_fast():
    peaks = {**PEAKS, "bf16": 400.0, "bf16_vs_fp32": 4.0}
    c = _run("bf16", tps=40_000.0, params=1_000_000)  # 240 GFLOP/s of 400
    bench.add_mfu(c, peaks)
    _, targets = bench.compare({"C": c, "B": _run("bf16", tps=15_000.0)}, None, peaks)
    assert [(t["value"], t["holds"]) for t in targets if "MFU" in t["target"]] == [(0.6, True)]
    # with native bf16 TRL's bf16 default is fast too, so C/B aims at 2.5x: 40000 / 15000 = 2.67
    assert [(t["target"], t["holds"], t["note"]) for t in targets if "C/B" in t["target"]] == [
        ("tokens/s C/B >= 2.5x", True, "native bf16")]


def test_without_trl_run_b_is_skipped_with_the_pip_command(monkeypatch, tmp_path, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real_find_spec(name, *a))
    monkeypatch.setattr(bench, "measure_peaks", lambda: dict(PEAKS))
    out = tmp_path / "b.json"
    assert main(["bench", "--only", "B", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["runs"]["B"]["skipped"].endswith(f"(pip install trl=={bench.TRL_PIN}, or pip install -e .[bench])")
    assert f"pip install trl=={bench.TRL_PIN}" in capsys.readouterr().out


def test_the_trl_pin_matches_pyproject_and_stays_out_of_requirements():
    root = BENCHMARKS.parent
    assert f'bench = ["trl=={bench.TRL_PIN}"]' in (root / "pyproject.toml").read_text()
    assert "trl" not in (root / "requirements.txt").read_text().lower()


def test_steps_below_one_is_a_course_error(capsys):
    assert main(["bench", "--steps", "0"]) == 2
    assert "--steps 0" in capsys.readouterr().err


@pytest.mark.slow
def test_every_run_on_tiny_random_fills_the_table_and_the_json(tmp_path, monkeypatch, capsys):
    """B (TRL) is part of the run when trl is installed, skipped with a message when not."""
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "bench.json"
    args = ["bench", "--model", "tiny-random", "--steps", "2", "--questions", "4", "--max-new-tokens", "8",
            "--json", str(out), "--only", "A", "B", "C", "D", "CM", "DM", "R", "G", "--compile", "false"]
    assert main(args) == 0
    report = json.loads(out.read_text())
    table = capsys.readouterr().out
    assert report["steps"] == 2 and report["peaks"]["fp32"] > 0 and len(report["load"]["after"]) == 3
    trained = ["A", "B", "C", "D", "CM", "DM", "R"] if HAS_TRL else ["A", "C", "D", "CM", "DM", "R"]
    for key in trained:
        r = report["runs"][key]
        assert r["steps"] == 2 and len(r["step_seconds"]) == 2 and r["tokens"] == sum(r["step_tokens"]) > 0
        assert r["tokens_per_s"] > 0 and r["peak_rss_mb"] > 100 and math.isfinite(r["final_loss"])
        assert r["precision"] in ("fp32", "bf16") and 0 < r["mfu"]
        assert any(line.startswith(f"{key} ") and r["label"][:20] in line for line in table.splitlines())
    assert report["runs"]["A"]["batch_size"] == 1 and report["runs"]["A"]["grad_accum"] == 4
    assert report["runs"]["C"]["trainable_params"] == report["runs"]["C"]["params"]
    assert report["runs"]["D"]["trainable_params"] < report["runs"]["D"]["params"] / 10
    assert report["runs"]["CM"]["final_loss"] == report["runs"]["C"]["final_loss"]  # recomputing changes no number
    assert report["runs"]["DM"]["final_loss"] == report["runs"]["D"]["final_loss"]
    if HAS_TRL:
        assert report["runs"]["B"]["precision"] == "bf16"  # SFTConfig's default, kept
    else:
        assert "pip install trl==" in report["runs"]["B"]["skipped"]
    g = report["generation"]
    assert g["questions"] == 4 and g["batch1_tokens"] > 0 and g["batch16_tokens"] > 0 and g["speedup"] > 0
    assert report["compile"] == "false" and not report["runs"]["C"]["compiled"]
    assert report["runs"]["R"]["compiled"] and report["runs"]["R"]["compile_seconds"] > 0  # R always compiles
    assert "C/R" in report["ratios"] and "targets:" in table and "generation (greedy" in table
