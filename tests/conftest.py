"""Fixtures for tests: running a test as on each kind of CPU the course meets."""
import pytest


@pytest.fixture(autouse=True)
def learner_sizes(monkeypatch):
    """Unit tests see the sizes a learner gets: fast mode (set for the notebooks) would cap steps and limits."""
    monkeypatch.setenv("LLMCOURSE_FAST", "0")


@pytest.fixture(params=["fp32", "bf16"])
def forced_precision(request, monkeypatch):
    """precision='auto' gives fp32 (as on an AVX2 CPU), then bf16 (as on AVX-512-BF16 and AMX), whatever this CPU is.

    For tests that train the tiny model and compare numbers, so that one machine catches what fails on another.
    """
    monkeypatch.setenv("LLMCOURSE_PRECISION", request.param)
    return request.param
