"""What several commands share: checking count flags before anything slow loads."""
from __future__ import annotations

from llmcourse.core.errors import CourseError


def check_positive(args, *names) -> None:
    """Refuse a count flag (e.g. --max-new-tokens) below 1 with one line, before anything slow loads."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise CourseError(f"--{name.replace('_', '-')} {value}: must be at least 1.")
