"""Every committed notebook: no outputs, the course kernel, a title, what you will learn, exercises."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
EXPECTED = ["00_setup", "01_prompting_vs_finetuning", "02_instruction_data", "03_training", "04_evaluation",
            "05_your_own_task"]


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_lessons_are_the_numbered_sequence():
    names = [p.stem for p in LESSONS]
    assert names == [n for n in EXPECTED if n in names]
    assert "00_setup" in names


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=lambda p: p.name)
def test_committed_without_outputs_and_with_the_course_kernel(path):
    nb = _load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "llm", "kernel must be 'llm' (Python (LLM))"
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"cell {i} keeps outputs: strip them before committing"
            assert cell.get("execution_count") is None, f"cell {i} keeps an execution count"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_opens_with_title_goals_and_time_and_ends_with_exercises(path):
    cells = _load(path)["cells"]
    first = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown" and re.match(rf"# {path.name[:2]} · ", first), "title cell '# NN · ...'"
    opening = "".join("".join(c["source"]) for c in cells[:2])
    assert "What you will learn" in opening and "Time:" in opening
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "## Exercises" in text and "★" in text
    assert (ROOT / "notebooks" / "solutions" / f"{path.stem}_solutions.ipynb").is_file()


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_prose_first_and_short_code_cells(path):
    cells = _load(path)["cells"]
    markdown = sum(c["cell_type"] == "markdown" for c in cells)
    assert markdown / len(cells) >= 0.45, "lessons teach in prose: about half the cells or more are markdown"
    for i, c in enumerate(cells):
        if c["cell_type"] == "code":
            lines = "".join(c["source"]).count("\n") + 1
            assert lines <= 20, f"code cell {i} has {lines} lines; split it or move logic into llmcourse"
