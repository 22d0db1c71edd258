"""What several commands share: checking count flags before anything slow loads, and finding a run named by --model."""
from __future__ import annotations

from pathlib import Path

from llmcourse.core.errors import CourseError


def check_positive(args, *names) -> None:
    """Refuse a count flag (e.g. --max-new-tokens) below 1 with one line, before anything slow loads."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise CourseError(f"--{name.replace('_', '-')} {value}: must be at least 1.")


def resolve_model(name: str):
    """(what load_model gets, the saved Run or None) for a --model value: a run by folder, name or name prefix
    (the newest match); anything else (a model name, folder or hub id) goes to load_model as it is."""
    from llmcourse.core.paths import BUNDLED
    from llmcourse.training.runs import find_run, is_run, load_run

    if name in (BUNDLED, "tiny-random") or (Path(name).expanduser().exists() and not is_run(Path(name).expanduser())):
        return name, None
    try:
        path = find_run(name)
    except CourseError:
        return name, None
    return str(path), load_run(path)
