"""TrainConfig.compile: when auto compiles, what a compiled run measures and remembers, and that compiled training
gives the eager losses, reuses its kernels in a new process and falls back to eager in one line."""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from llmcourse.core.errors import CourseError
from llmcourse.training import compiling
from llmcourse.training.compiling import decide, measured, remember, steady_tokens_per_second
from llmcourse.training.config import TrainConfig

CPU = torch.device("cpu")
MODEL = SimpleNamespace(config=SimpleNamespace(_name_or_path="/cache/smollm2-135m-instruct/", hidden_size=576,
                                               num_hidden_layers=30))


@pytest.fixture
def kernel_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    return tmp_path / "inductor"


def test_compile_takes_auto_true_false_and_the_booleans():
    assert TrainConfig(compile=True).compile == "true" and TrainConfig(compile=False).compile == "false"
    assert TrainConfig().compile == "auto" and TrainConfig().replace(compile="false").compile == "false"
    with pytest.raises(CourseError, match="TrainConfig.compile='yes': use one of auto, true, false"):
        TrainConfig(compile="yes")
    assert TrainConfig(compile="false").to_args() == ["--compile", "false"]


def test_auto_compiles_when_the_seconds_it_saves_beat_the_assumed_first_compile(kernel_cache):
    # fp32 assumes 1.05x: 100 steps x 2 s save 200 x (1 - 1/1.05) = 9.5 s, below a first compile's 60 s
    off = decide("auto", CPU, steps=100, seconds_per_step=2.0, model=MODEL, precision="fp32")
    assert not off.compile
    assert off.reason == ("off (auto): 100 steps x 2.00 s would save about 10 s at 1.05x, compiling costs about 60 s "
                          "(a first compile on this machine; assumed); compile=true forces it")
    # bf16 assumes 1.7x: 1000 steps x 2 s save 824 s
    on = decide("auto", CPU, steps=1000, seconds_per_step=2.0, model=MODEL, precision="bf16")
    assert on.compile and on.reason.startswith("on (auto): 1000 steps x 2.00 s would save about 824 s at 1.70x")


def test_auto_uses_what_earlier_runs_measured_on_this_machine(kernel_cache):
    remember(MODEL, "full", "fp32", eager=100.0)
    assert measured(MODEL, "full", "fp32") == {"eager": 100.0}  # no speed-up without a compiled run
    remember(MODEL, "full", "fp32", seconds=9.96, compiled=125.0)
    assert measured(MODEL, "full", "fp32") == {"eager": 100.0, "seconds": 9.96, "compiled": 125.0, "speedup": 1.25}
    assert measured(MODEL, "lora-r16", "fp32") == {}  # LoRA is its own entry, and each rank
    assert TrainConfig(lora=True, lora_r=8).method == "lora-r8" and TrainConfig().method == "full"
    # 100 x 2 s x (1 - 1/1.25) = 40 s saved against 10 s measured
    on = decide("auto", CPU, steps=100, seconds_per_step=2.0, model=MODEL, precision="fp32")
    assert on.compile and "save about 40 s at 1.25x, compiling costs about 10 s (measured here before)" in on.reason
    key = next(iter(json.loads((kernel_cache / compiling.RECORD).read_text())))
    assert key == f"smollm2-135m-instruct 576x30|full|fp32|torch {torch.__version__}"


def test_a_damaged_compile_record_is_replaced_not_fatal(kernel_cache):
    kernel_cache.mkdir()
    (kernel_cache / compiling.RECORD).write_text("[1, 2")
    assert measured(MODEL, "full", "fp32") == {}
    remember(MODEL, "full", "fp32", seconds=3.0)
    assert measured(MODEL, "full", "fp32") == {"seconds": 3.0}


def test_off_and_true_and_where_compiling_cannot_work(kernel_cache):
    assert decide("false", CPU, steps=10**6, seconds_per_step=9.0).reason == "off (compile=false)"
    assert decide("true", CPU, steps=1, seconds_per_step=None).compile
    assert decide("auto", CPU, steps=10**6, seconds_per_step=None).reason == (
        "off: auto decides from a timed step, and none was timed (estimate=False)")
    assert decide("true", CPU, steps=1, seconds_per_step=None, distributed=True).reason == (
        "off: not under torchrun/accelerate (one process only); training eagerly")
    assert decide("true", torch.device("mps"), steps=1, seconds_per_step=None).reason == (
        "off: torch.compile does not speed up training on mps; training eagerly")
    import torch._inductor.config as inductor_config

    with inductor_config.patch({"cpp.cxx": ("/nonexistent/g++",)}):
        assert compiling.compiler_problem.__wrapped__("cpu").startswith("no working C++ compiler for torch.compile (")


def test_steady_speed_leaves_out_the_first_steps_and_every_interval_with_an_evaluation():
    def row(step, seconds, tokens, loss=1.0):
        return {"step": step, "seconds": seconds, "tokens": tokens, "loss": loss}

    history = [{"step": 0, "eval_loss": 3.0}, row(1, 30.0, 100), row(2, 31.0, 200), row(3, 32.0, 300),
               {"step": 3, "eval_loss": 2.0, "loss": None}, row(4, 40.0, 400), row(5, 40.5, 500), row(6, 41.0, 600)]
    # intervals 2->3 (1 s, 100 tokens), 4->5 and 5->6 (0.5 s, 100 tokens each); 1->2 and 3->4 are left out
    assert steady_tokens_per_second(history) == 300 / 2.0
    assert steady_tokens_per_second(history[:5]) is None  # one interval is not a speed


def _child(mode, tmp_path):
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"), "LLMCOURSE_RUNS": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "fixtures" / "compiled_runs.py"), mode],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done


def test_compiled_training_matches_eager_reuses_its_kernels_and_falls_back_in_one_line(tmp_path):
    first, _ = _child("first", tmp_path)
    tolerance = 1e-4 if first["eager"]["precision"] == "fp32" else 3e-2  # fused kernels round bf16 differently
    for eager, compiled in (("eager", "compiled"), ("eager_lora", "compiled_lora")):
        assert first[compiled]["compiled"] and not first[eager]["compiled"]
        assert first[compiled]["losses"] == pytest.approx(first[eager]["losses"], abs=tolerance)
        assert first[compiled]["eval"] == pytest.approx(first[eager]["eval"], abs=tolerance)
    compiled_first = first["compiled_inductor"]
    assert compiled_first.get("fxgraph_cache_miss", 0) > 0

    second, done = _child("second", tmp_path)  # a new process, the same kernel cache
    again = second["compiled_inductor"]
    assert again.get("fxgraph_cache_hit", 0) > 0
    assert again.get("fxgraph_cache_miss", 0) < compiled_first["fxgraph_cache_miss"]
    assert second["compiled"]["losses"] == pytest.approx(first["compiled"]["losses"], abs=tolerance)
    record = json.loads((tmp_path / "inductor" / compiling.RECORD).read_text())
    assert {key.split("|")[1] for key in record} == {"full", f"lora-r{TrainConfig().lora_r}"}
    for entry in record.values():  # each method's eager and compiled speed, and its compile seconds
        assert entry["eager"] > 0 and entry["compiled"] > 0 and entry["seconds"] > 0

    failed = second["failed_lora"]
    assert not failed["compiled"] and len(failed["losses"]) == 6  # trained to the end, eagerly
    lines = [line for line in done.stdout.splitlines() if line.startswith("compile: ")]
    assert len(lines) == 1 and "No working C++ compiler" in lines[0] and "ran eagerly" in lines[0]
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


def test_the_cli_trains_eagerly_with_one_line_when_there_is_no_compiler(tmp_path):
    env = {**os.environ, "CXX": "/nonexistent/g++", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
           "LLMCOURSE_RUNS": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "-m", "llmcourse", "train", "--model", "tiny-random", "--max-steps", "2",
                           "--max-train-samples", "16", "--compile", "true", "--run-name", "nocxx"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "  compile: off: no working C++ compiler for torch.compile (" in done.stdout
    assert "nocxx: finished after 2 steps" in done.stdout and "Traceback" not in done.stderr
