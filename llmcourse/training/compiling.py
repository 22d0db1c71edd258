"""Compiled training: torch.compile on each decoder layer, lengths padded to a few buckets, kernels cached on disk.

A small model on a CPU spends much of a step in small elementwise operations (norms, activations, rotary
embeddings, residual adds); compiling fuses them. It costs time once: the bundled model's first compile took
36 s on a 2-core CPU, and later runs load the kernels from inductor's cache (under the course cache folder).

Regional compilation: every decoder layer runs the same code, so torch compiles it once and reuses it for all
of them, instead of tracing the whole model. Shapes are dynamic, so one graph serves every batch length (rows
are padded to a multiple of BUCKET tokens, a few tokens at most; padding to 32 cost a quarter of the speed on
the shipped data's 60-70-token rows).

`TrainConfig.compile`: "true" compiles, "false" never does, "auto" compiles when the cost estimate says the
steps it saves outweigh the compile time, on a device and with a compiler that can do it.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from dataclasses import dataclass

import torch

from llmcourse.core.paths import inductor_cache

BUCKET = 8  # compiled runs pad every row to a multiple of this many tokens
# What auto assumes compiling gains per step until this machine has measured it (bare loop, bundled model, batch 8):
# 1.72x with bf16 on an Intel Xeon with AMX; in fp32 on an AMD EPYC with AVX2 between 1.0x and 1.09x (bench runs
# R/P, C and D with compile true and false): its fp32 matrix products leave little for fusion to save
SPEEDUP = {"bf16": 1.7, "fp16": 1.7, "fp32": 1.05}
# What auto assumes the first compile costs until this machine has measured it: the bundled model's full finetuning
# compiled (train and evaluation graphs) in 36 s on a 2-core AMD EPYC with AVX2, with a margin for slower machines
FIRST_COMPILE_SECONDS = 60.0
RECORD = "llmcourse-compile.json"  # per machine: measured compile seconds and speedups, by model and method


@functools.cache
def compiler_problem(device_type: str = "cpu") -> str | None:
    """None when torch.compile can build kernels for this device here; else why not, in a few words.

    On a CPU inductor writes C++ and needs a C++ compiler (most Windows laptops have none); on a GPU it needs triton.
    A compile that fails later anyway falls back to eager (see compile_layers)."""
    if device_type not in ("cpu", "cuda"):
        return f"torch.compile does not speed up training on {device_type}"
    inductor_cache()  # before torch's first look for a cache folder, which otherwise picks one in /tmp
    try:
        if device_type == "cpu":
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()
        else:
            from torch.utils._triton import has_triton

            if not has_triton():
                return "torch.compile needs triton for this GPU (pip install triton)"
    except Exception as e:  # noqa: BLE001 - any failure means: train eagerly
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return f"no working C++ compiler for torch.compile ({first[:120]})"
    return None


def _key(model, method: str, precision: str) -> str:
    config = getattr(model, "config", None)
    name = os.path.basename(str(getattr(config, "_name_or_path", "")).rstrip("/\\")) or type(model).__name__
    size = f"{getattr(config, 'hidden_size', '?')}x{getattr(config, 'num_hidden_layers', '?')}"
    return f"{name} {size}|{method}|{precision}|torch {torch.__version__}"


def _record_path():
    return inductor_cache() / RECORD


def measured(model, method: str, precision: str) -> dict:
    """What earlier runs of this model, method and precision measured on this machine: the last compiled run's
    "seconds" of compiling, "eager" and "compiled" steady tokens/s, and "speedup" (compiled / eager) once both
    are known. {} when nothing was measured."""
    try:
        record = json.loads(_record_path().read_text()).get(_key(model, method, precision), {})
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(record, dict):
        return {}
    if record.get("eager") and record.get("compiled"):
        record["speedup"] = round(record["compiled"] / record["eager"], 3)
    return record


def remember(model, method: str, precision: str, **values) -> None:
    """Store what a finished run measured ("seconds" of compiling, "eager" or "compiled" steady tokens/s) for the
    next `auto` decision (a damaged record is replaced)."""
    path = _record_path()
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            record = {}
    except (OSError, ValueError):
        record = {}
    record.setdefault(_key(model, method, precision), {}).update({k: round(v, 3) for k, v in values.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two runs ending together never share one
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


@dataclass
class CompileDecision:
    """Whether a run compiles, and the one-line reason the cost estimate prints."""
    compile: bool
    reason: str


def decide(setting: str, device: torch.device, *, steps: int, seconds_per_step: float | None, model=None,
           method: str = "full", precision: str = "fp32", distributed: bool = False) -> CompileDecision:
    """Compile or not, for TrainConfig.compile = setting ("auto", "true", "false")."""
    if setting == "false":
        return CompileDecision(False, "off (compile=false)")
    problem = "not under torchrun/accelerate (one process only)" if distributed else compiler_problem(device.type)
    if problem:
        return CompileDecision(False, f"off: {problem}; training eagerly")
    if setting == "true":
        return CompileDecision(True, "on (compile=true)")
    if seconds_per_step is None:
        return CompileDecision(False, "off: auto decides from a timed step, and none was timed (estimate=False)")
    known = measured(model, method, precision) if model is not None else {}
    compile_s = known.get("seconds", FIRST_COMPILE_SECONDS)
    speedup = known.get("speedup", SPEEDUP.get(precision, 1.0))
    saved = steps * seconds_per_step * (1 - 1 / speedup)
    how = "measured here before" if "seconds" in known else "a first compile on this machine; assumed"
    numbers = (f"{steps} steps x {seconds_per_step:.2f} s would save about {saved:.0f} s at {speedup:.2f}x, "
               f"compiling costs about {compile_s:.0f} s ({how})")
    if saved > compile_s:
        return CompileDecision(True, f"on (auto): {numbers}")
    return CompileDecision(False, f"off (auto): {numbers}; compile=true forces it")


def steady_tokens_per_second(history: list[dict], skip: int = 2) -> float | None:
    """Real tokens per second between consecutive training steps, after the first `skip` (compiling, warming up) and
    leaving out every interval with an evaluation in it; None with fewer than 3 such intervals."""
    seconds = tokens = intervals = 0
    previous = None
    for row in history:
        if row.get("loss") is None or row.get("tokens") is None:  # an evaluation row
            previous = None
            continue
        if previous is not None and previous["step"] >= skip:
            seconds += row["seconds"] - previous["seconds"]
            tokens += row["tokens"] - previous["tokens"]
            intervals += 1
        previous = row
    return tokens / seconds if intervals >= 3 and seconds > 0 else None


def repeated_blocks(model) -> list[torch.nn.Module]:
    """The model's decoder layers: the modules whose class the model names in _no_split_modules (works with LoRA)."""
    names = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in names]


def compile_layers(model) -> int:
    """Compile each decoder layer in place (regional compilation); returns how many. Undo with uncompile_layers."""
    inductor_cache()
    blocks = repeated_blocks(model)
    for block in blocks:
        block.compile(dynamic=True)
    return len(blocks)


def uncompile_layers(model) -> None:
    """Back to eager layers (generation after training should not compile new graphs for its cached attention)."""
    for block in repeated_blocks(model):
        block._compiled_call_impl = None  # what nn.Module.compile set; there is no public way back


def compile_seconds() -> float:
    """Seconds this process has spent compiling so far, as torch's own timers count them."""
    from torch._dynamo.utils import calculate_time_spent

    times = calculate_time_spent()
    return float(times.get("entire_frame_compile", 0.0) or times.get("total_wall_time", 0.0))


class _Problems(logging.Filter):
    """Keeps the last line of each warning torch's compiler logs (a failed compile falls back to eager with a
    long traceback in the log) and stops the warning, so a run says it in one line instead."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        lines = [line.strip() for line in record.getMessage().splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith(("Set TORCHDYNAMO_VERBOSE", "To "))] or ["?"]
        self.lines.append(lines[0] if "recompile_limit" in lines[0] else lines[-1])
        return False


@contextlib.contextmanager
def watch_compiling():
    """Yields a dict that holds, afterwards, the seconds torch spent compiling inside the block ("compile_seconds")
    and the one-line problems it ran into ("problems"; their calls ran eagerly instead)."""
    out, problems = {}, _Problems()
    loggers = [logging.getLogger(name) for name in ("torch._dynamo.convert_frame", "torch._dynamo.eval_frame")]
    for logger in loggers:
        logger.addFilter(problems)
    before = compile_seconds()
    try:
        with torch._dynamo.config.patch(suppress_errors=True):  # a graph that fails to compile runs eagerly instead
            yield out
    finally:
        for logger in loggers:
            logger.removeFilter(problems)
        out["compile_seconds"] = compile_seconds() - before
        out["problems"] = list(dict.fromkeys(problems.lines))
