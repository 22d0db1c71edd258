"""check-course: runs notebooks into another folder and reports a table with failures."""
import json
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from llmcourse import CourseError
from llmcourse.cli.main import main
from llmcourse.course.check_course import NotebookResult, course_notebooks, format_table


def _nb(path, *sources):
    nb = new_notebook(cells=[new_markdown_cell("# t")] + [new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "llm", "display_name": "Python (LLM)", "language": "python"}
    nbformat.write(nb, path)


def test_course_notebooks_are_in_lesson_order():
    names = [p.stem for p in course_notebooks()]
    assert names == sorted(names) and names[0] == "00_setup"


def test_table_lists_status_time_memory_and_error():
    table = format_table([NotebookResult("00_setup", True, 12.4, 800.0),
                          NotebookResult("01_x", False, 3.0, 500.0, "ZeroDivisionError: division by zero")])
    assert "00_setup  ok           12      800" in table
    assert "01_x      FAILED        3      500" in table
    assert "-> ZeroDivisionError: division by zero" in table
    assert "1/2 ok" in table


def test_runs_notebooks_into_output_folder_and_fails_on_error(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _nb(nbs / "00_good.ipynb", "import os\nprint('fast' if os.environ['LLMCOURSE_FAST'] == '1' else 'full')",
        "print(os.environ['LLMCOURSE_RUNS'])")
    _nb(nbs / "01_bad.ipynb", "1 / 0")
    out = tmp_path / "out"
    runs_before = os.environ.get("LLMCOURSE_RUNS")
    code = main(["check-course", "--notebooks", str(nbs), "--output-dir", str(out), "--skip-doctor"])
    assert code == 1
    printed = capsys.readouterr().out
    assert "00_good" in printed and "FAILED" in printed and "ZeroDivisionError" in printed
    executed = json.loads((out / "00_good.ipynb").read_text())
    assert "".join(executed["cells"][1]["outputs"][0]["text"]) == "fast\n"
    assert "".join(executed["cells"][2]["outputs"][0]["text"]) == f"{out / 'runs'}\n"  # fast runs never touch runs/
    assert os.environ.get("LLMCOURSE_RUNS") == runs_before
    original = json.loads((nbs / "00_good.ipynb").read_text())
    assert original["cells"][1]["outputs"] == []  # the lesson itself is untouched


def test_refuses_to_write_over_the_lessons(tmp_path):
    _nb(tmp_path / "00_a.ipynb", "1")
    with pytest.raises(CourseError, match="overwrite"):
        from llmcourse.cli.main import build_parser
        from llmcourse.cli.check_course import run
        run(build_parser().parse_args(["check-course", "--notebooks", str(tmp_path), "--output-dir", str(tmp_path),
                                       "--skip-doctor"]))
