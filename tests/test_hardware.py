"""hardware: the matmul probe returns sane positive numbers and the bf16 ratio is cached."""
import torch

from llmcourse import hardware


def test_matmul_gflops_is_positive_and_bounded():
    g = hardware.matmul_gflops(torch.float32, n=128, min_seconds=0.05)
    assert 0.01 < g < 1e6


def test_bf16_speedup_is_measured_once_per_process():
    hardware.bf16_speedup.cache_clear()
    first = hardware.bf16_speedup()
    assert first > 0
    assert hardware.bf16_speedup() == first
    assert hardware.bf16_speedup.cache_info().hits == 1


def test_cpu_summary_names_instruction_set_and_threads():
    s = hardware.cpu_summary()
    isa, threads = s.split(", ")
    assert isa == torch.backends.cpu.get_cpu_capability()
    assert threads == f"{torch.get_num_threads()} threads"
