"""Which names are Hugging Face hub ids and which are local paths, decided the same way for models and data."""
from __future__ import annotations

import re
from pathlib import Path

from llmcourse.core.errors import CourseError

_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,15}$")  # .jsonl, .csv, .h5; not the ".5B-Instruct" of a model id


def is_hub_id(name) -> bool:
    """True for 'owner/name' that can only mean the hub: one '/', no file extension, nothing local by that name."""
    name = str(name)
    if name.count("/") != 1 or name.startswith((".", "/", "~")) or _EXTENSION.search(name):
        return False
    path = Path(name)
    return not path.exists() and not path.parent.is_dir()  # "runs/typo" is a path under the local runs/ folder


def looks_like_path(name) -> bool:
    """True for a name that can only be a local path: a folder separator or a file extension, and no hub id."""
    name = str(name)
    return not is_hub_id(name) and ("/" in name or "\\" in name or bool(_EXTENSION.search(name)))


def missing_path(name, what: str = "file or folder") -> CourseError:
    """The one-line error for a local path that is not there (instead of a slow hub lookup that blames the network)."""
    return CourseError(f"{name}: no such {what} (relative paths start from {Path.cwd()}). Check the path; a hub id "
                       "has exactly one '/' and no file extension, e.g. 'HuggingFaceTB/SmolLM2-360M-Instruct'.")
