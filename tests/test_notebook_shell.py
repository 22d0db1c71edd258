"""Notebook shell calls survive spaces in paths: no cell builds a shell command line from a path string."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted(Path(__file__).resolve().parent.parent.glob("notebooks/**/*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_builds_a_shell_command_from_a_string(path):
    """`!{sys.executable} ...` breaks when the path has a space; `subprocess.run([sys.executable, ...])` does not."""
    bad = []
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            if (line.lstrip().startswith("!") and "{" in line) or "os.system(" in line:
                bad.append(f"cell {i}: {line.strip()}")
    assert not bad, f"{path.name}: use subprocess.run with an argument list instead of\n" + "\n".join(bad)
