"""Every committed notebook: no outputs, the course kernel, a title, what you will learn, exercises."""
import json
import re
from pathlib import Path

import pytest

from llmcourse.notebook.kernel import LANGUAGE_INFO

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
    # what the course kernel reports, so JupyterLab opens the notebook without marking it changed
    assert nb["metadata"].get("language_info") == LANGUAGE_INFO, (
        "metadata.language_info must be llmcourse.notebook.kernel.LANGUAGE_INFO, what the course kernel reports: "
        "save the notebook from the course's JupyterLab")
    # nbformat 4.5 cells carry ids: JupyterLab adds the missing ones on open, and the notebook opens changed
    ids = [cell.get("id") for cell in nb["cells"]]
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5) and None not in ids and len(set(ids)) == len(ids), (
        "every cell needs its own id (nbformat 4.5): nbformat.validator.normalize, or save it from JupyterLab")
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


# every notebook under notebooks/: lessons, solutions, and any notebook added later
ALL_NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _public_api_problems(code: str) -> list[str]:
    """What in one code cell reaches past llmcourse's exported names, or runs a shell command."""
    import ast

    import llmcourse

    public = set(llmcourse.__all__)
    problems = [f"shell command {line.strip()!r}: use run_cli([...]) (an argument list survives spaces in paths)"
                for line in code.splitlines() if line.lstrip().startswith("!")]
    tree = ast.parse("\n".join("pass" if line.lstrip().startswith(("!", "%")) else line for line in code.splitlines()))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            problems += [f"import {a.name}: import names from llmcourse instead"
                         for a in node.names if a.name.startswith("llmcourse.")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llmcourse."):
            problems.append(f"from {node.module} import ...: use `from llmcourse import X` (add X to _EXPORTS)")
        elif isinstance(node, ast.ImportFrom) and node.module == "llmcourse":
            problems += [f"from llmcourse import {a.name}: not in llmcourse.__all__"
                         for a in node.names if a.name not in public]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "llmcourse"
              and not node.attr.startswith("__") and node.attr not in public):
            problems.append(f"llmcourse.{node.attr}: not in llmcourse.__all__")
    return problems


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_use_only_exported_names_and_no_fast_switches(path):
    for i, cell in enumerate(_load(path)["cells"]):
        text = "".join(cell["source"])
        switch = re.search(r"FAST|SHORT", text)
        assert not switch, f"cell {i} mentions {switch.group()}: fast mode is chosen inside llmcourse (fastmode.py)"
        if cell["cell_type"] == "code":
            problems = _public_api_problems(text)
            assert not problems, f"cell {i}: " + "; ".join(problems)


def test_the_public_api_check_catches_each_way_around_it():
    bad = ("from llmcourse.models.backends import LocalLLM\nimport llmcourse.evaluation.metrics\nfrom llmcourse import models, generate\n"
           "import llmcourse\nllmcourse.hardware.cpu_summary()\nprint(llmcourse.__version__)\n!{sys.executable} -m llmcourse")
    found = _public_api_problems(bad)
    assert [p.split(":")[0] for p in found] == [
        "shell command '!{sys.executable} -m llmcourse'", "from llmcourse.models.backends import ...", "import llmcourse.evaluation.metrics",
        "from llmcourse import models", "llmcourse.hardware"]


def test_every_exported_name_is_documented_once_in_docs_api():
    import llmcourse

    documented = re.findall(r"^- `([A-Za-z_]+)`", (ROOT / "docs" / "api.md").read_text(encoding="utf-8"), re.M)
    assert sorted(documented) == sorted(llmcourse.__all__)


# The lesson is the learner's text: how the course is tested and its fast mode belong in docs/, not in a cell.
ENGINEERING = re.compile(r"fast[ -]mode|test suite|the suite\b|\bpytest\b|\bnbmake\b|\btests?/|\bCI\b"
                         r"|\ba test (?:checks|makes sure|asserts|runs)|\bthe tests? (?:check|run|make)", re.I)
MAX_WORDS = 250


def lesson_text_problems(cell: dict) -> list[str]:
    """What in one cell is engineering talk, or too long to read as one piece of the lesson."""
    text = "".join(cell["source"])
    problems = [f"mentions {m.group()!r}: say it in docs/notebooks/, not in the lesson" for m in ENGINEERING.finditer(text)]
    words = len(text.split())
    if cell["cell_type"] == "markdown" and words > MAX_WORDS:
        problems.append(f"a markdown cell of {words} words: split or cut it to {MAX_WORDS} or fewer")
    return problems


def test_the_lesson_text_check_catches_engineering_talk_and_long_cells():
    md = {"cell_type": "markdown", "source": ["In fast mode the suite runs this; a test checks it. The test split stays."]}
    assert [p.split(":")[0] for p in lesson_text_problems(md)] == [
        "mentions 'fast mode'", "mentions 'the suite'", "mentions 'a test checks'"]
    long = {"cell_type": "markdown", "source": ["word " * 251]}
    assert lesson_text_problems(long) == ["a markdown cell of 251 words: split or cut it to 250 or fewer"]
    assert lesson_text_problems({"cell_type": "markdown", "source": ["word " * 250]}) == []
    assert lesson_text_problems({"cell_type": "code", "source": ["# runs in CI\nx = 1"]})[0].startswith("mentions 'CI'")


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_learner_cells_are_the_lesson_not_the_engineering(path):
    problems = [f"cell {i}: {p}" for i, cell in enumerate(_load(path)["cells"]) for p in lesson_text_problems(cell)]
    assert not problems, "\n".join(problems)
