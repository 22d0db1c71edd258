"""`python -m llmcourse bench`: training and generation speed against the peers, in separate processes."""
from __future__ import annotations

from llmcourse.course import bench


def add_arguments(p) -> None:
    bench.add_arguments(p)


def run(args) -> int:
    return bench.run(args)
