"""hardware: the matmul probe returns sane positive numbers, the bf16 ratio is cached, auto precision follows it."""
import json

import pytest
import torch

from llmcourse.core import hardware


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


def test_prefers_bf16_measures_once_per_machine_and_remembers_it(tmp_path, monkeypatch):
    cache = tmp_path / "hardware.json"
    calls = []
    monkeypatch.setattr(hardware, "bf16_speedup", lambda device: calls.append(device) or 0.08)
    assert hardware.prefers_bf16("cpu", cache_file=cache) is False
    saved = json.loads(cache.read_text())
    assert list(saved.values()) == [0.08] and calls == ["cpu"]
    (key,) = saved
    assert key.startswith("cpu | ") and f"torch {torch.__version__}" in key
    assert hardware.prefers_bf16("cpu", cache_file=cache) is False and calls == ["cpu"]  # read back, not measured


@pytest.mark.parametrize("speedup, chosen", [(1.19, False), (1.2, True), (3.9, True)])
def test_prefers_bf16_needs_a_measured_speedup_of_at_least_1_2(tmp_path, monkeypatch, speedup, chosen):
    monkeypatch.setattr(hardware, "bf16_speedup", lambda device: speedup)
    assert hardware.prefers_bf16("cpu", cache_file=tmp_path / "h.json") is chosen


def test_auto_precision_on_this_cpu_follows_the_measurement(tmp_path, monkeypatch):
    from llmcourse.training.trainer import resolve_precision

    monkeypatch.delenv("LLMCOURSE_PRECISION", raising=False)  # a developer may have set it for the whole suite
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(hardware, "bf16_speedup", lambda device: 0.1)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(hardware, "bf16_speedup", lambda device: 2.5)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"  # remembered for this machine
    (tmp_path / "hardware.json").unlink()
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"


@pytest.mark.parametrize("speedup", [0.1, 2.5])
def test_llmcourse_precision_forces_what_auto_picks_on_a_cpu_whatever_was_measured(tmp_path, monkeypatch, speedup):
    from llmcourse import CourseError
    from llmcourse.training.trainer import resolve_precision

    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(hardware, "bf16_speedup", lambda device: speedup)
    measured = "bf16" if speedup > 1 else "fp32"
    for value, chosen in [("bf16", "bf16"), ("fp32", "fp32"), (" BF16 ", "bf16"), ("", measured)]:
        monkeypatch.setenv("LLMCOURSE_PRECISION", value)
        assert resolve_precision("auto", torch.device("cpu")) == chosen
        assert resolve_precision("fp32", torch.device("cpu")) == "fp32"  # an explicit choice stays as it is
    monkeypatch.setenv("LLMCOURSE_PRECISION", "fp16")
    with pytest.raises(CourseError, match=r"^LLMCOURSE_PRECISION='fp16': set it to bf16 or fp32, or unset it"):
        resolve_precision("auto", torch.device("cpu"))


def test_torchrun_processes_share_the_cores(monkeypatch):
    from llmcourse.training.trainer import set_threads_for_this_process

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    try:
        assert set_threads_for_this_process() == 4
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's choice wins
        torch.set_num_threads(3)
        assert set_threads_for_this_process() == 3
    finally:
        torch.set_num_threads(before)


def test_releases_memory_frees_the_reference_cycles_a_finished_call_leaves():
    """Trainer and its callbacks refer to each other; without a collection such cycles outlive the run."""
    import gc
    import weakref

    class Node:
        pass

    left = []

    @hardware.releases_memory
    def work(fail: bool):
        a, b = Node(), Node()
        a.other, b.other = b, a
        left.append(weakref.ref(a))
        del a, b  # only the cycle holds them now (a raised error's traceback keeps this frame's locals)
        if fail:
            raise ValueError("stopped")
        return 3

    gc.disable()  # no automatic collection may do the decorator's work
    try:
        assert work(False) == 3
        with pytest.raises(ValueError):
            work(True)
        assert [ref() for ref in left] == [None, None]
    finally:
        gc.enable()
