"""What this machine's processor can do (matrix-multiply speed per number format, measured, not guessed), and
giving memory back to it once a run is over."""
from __future__ import annotations

import ctypes
import functools
import gc
import json
import os
import platform
import time
from pathlib import Path

import torch
from llmcourse.core.paths import cache_dir
from llmcourse.core.errors import CourseError


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 1024, min_seconds: float = 0.3,
                  device: str = "cpu") -> float:
    """Measured GFLOP/s of an n×n matrix multiply, repeated for at least `min_seconds` after one warm-up.

    A format the hardware lacks (bfloat16 on a CPU without AVX-512-BF16/AMX) is emulated and can be
    100× slower, so one multiply is timed first and the loop stops as soon as the budget is spent.
    """
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a @ b
    sync()
    done, start = 0, time.perf_counter()
    while True:
        a @ b
        done += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return 2 * n**3 * done / elapsed / 1e9


@functools.lru_cache(maxsize=None)
def bf16_speedup(device: str = "cpu") -> float:
    """How many times faster bfloat16 matmuls are than float32 here (cached per process; ~1 s to measure)."""
    if device.startswith("cuda"):
        if not torch.cuda.is_bf16_supported():
            return 0.0
    fp32 = matmul_gflops(torch.float32, n=512, min_seconds=0.2, device=device)
    bf16 = matmul_gflops(torch.bfloat16, n=512, min_seconds=0.2, device=device)
    return bf16 / fp32


BF16_MIN_SPEEDUP = 1.2  # below this, bf16 autocast costs more in conversions than its matmuls save


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), e.g. 'AMD EPYC 7B13'."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _machine_key(device: str) -> str:
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else cpu_name()
    return f"{device} | {name} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def prefers_bf16(device: str = "cpu", cache_file: Path | None = None) -> bool:
    """True when bf16 matmuls ran at least BF16_MIN_SPEEDUP x faster than fp32 on this machine.

    Measured once per machine (bf16_speedup, ~1 s) and remembered in <cache_dir>/hardware.json, keyed by the
    processor, torch version and thread count; delete that file to measure again.
    """
    cache_file = cache_file or cache_dir() / "hardware.json"
    key = _machine_key(device)
    try:
        known = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = round(bf16_speedup(device), 3)
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, indent=1))
            tmp.replace(cache_file)
        except OSError:
            pass  # a read-only cache only means measuring again next time
    return known[key] >= BF16_MIN_SPEEDUP


PRECISION_ENV = "LLMCOURSE_PRECISION"  # bf16 or fp32: what precision="auto" picks on a CPU, instead of measuring


def forced_cpu_precision() -> str | None:
    """$LLMCOURSE_PRECISION (bf16 or fp32), to train or test as on another kind of CPU; None when unset."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower()
    if value in ("", "bf16", "fp32"):
        return value or None
    raise CourseError(f"{PRECISION_ENV}={value!r}: set it to bf16 or fp32, or unset it so that precision='auto' "
                      "measures this CPU.")


def cpu_summary() -> str:
    """One line: instruction set PyTorch uses and thread count, e.g. 'AVX2, 2 threads'."""
    return f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"


def release_memory() -> None:
    """Hand memory that finished work has freed back to the operating system.

    A training run leaves reference cycles (Trainer, its callbacks, the optimizer) that only the garbage
    collector frees, and glibc keeps freed heap pages for reuse instead of returning them, so without this a
    notebook that trains five runs holds the peak of every one. Collects, then asks glibc to trim (Linux; a
    no-op elsewhere) and empties the CUDA cache.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, Windows, musl): the allocator returns memory its own way


def releases_memory(fn):
    """Decorator: once `fn` has returned or raised (its Trainer and temporary copies gone), release_memory()."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            release_memory()
    return wrapper
