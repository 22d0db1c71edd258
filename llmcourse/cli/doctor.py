"""`python -m llmcourse doctor`: check Python, packages, kernel, device, disk, RAM and the model."""
from __future__ import annotations

from llmcourse.course.doctor import report, run_checks


def add_arguments(p) -> None:
    """doctor takes no options."""


def run(args) -> int:
    return report(run_checks())
