"""What this machine's processor can do: matrix-multiply speed per number format, measured, not guessed."""
from __future__ import annotations

import functools
import time

import torch


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


def cpu_summary() -> str:
    """One line: instruction set PyTorch uses and thread count, e.g. 'AVX2, 2 threads'."""
    return f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
