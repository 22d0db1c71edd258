"""The course in a real browser: JupyterLab and Notebook 7 in Debian's headless Chromium run the notebooks
as a learner does (Run All, then the training widgets), with no widget errors or tracebacks on the page.

Screenshots go to each test's tmp_path, and to $LLMCOURSE_SCREENSHOTS when that is set.
"""
import os

import nbformat
import pytest

from browser_helpers import (
    CHROMIUM, ROOT, JupyterServer, assert_no_errors, chromium, click_menu, open_page, run_all_cells, screenshot,
    train_from_the_panel, wait_for, wait_for_kernel, wait_until_all_cells_ran,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]
pytest.importorskip("playwright", reason="pip install -r requirements.txt (it pins playwright)")

URL = {"lab": "/lab/tree/", "notebook": "/notebooks/"}  # JupyterLab, Notebook 7


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """A `jupyter lab` and a `jupyter notebook` server, each started on first use, all stopped at the end."""
    started = {}

    def get(app):
        if app not in started:
            started[app] = JupyterServer(app, tmp_path_factory.mktemp(app)).__enter__()
        return started[app]

    yield get
    for server in started.values():
        server.stop()


@pytest.fixture
def open_notebook(browser, servers, request, tmp_path):
    """Opens a private copy of a notebook in JupyterLab or Notebook 7 and waits for its kernel.

    Afterwards: a last screenshot, the page closed, its kernel stopped; browser console and server log
    are printed (pytest shows them when the test failed).
    """
    opened = []

    def _open(source, ui):
        server = servers(ui)
        name = server.copy_notebook(source)
        console = []
        # ?reset: a fresh JupyterLab workspace, without the tabs of earlier tests
        page = open_page(browser, server.url(URL[ui] + name, **({"reset": ""} if ui == "lab" else {})), console)
        opened.append((server, page, console))
        wait_for_kernel(page, server)
        return page, server

    yield _open
    for server, page, console in opened:
        try:
            screenshot(page, tmp_path / f"{request.node.name}-end.png")
            print("browser console:", *console[-20:], sep="\n  ")
            print(f"{server.app} server log:", server.log_tail(), sep="\n")
        finally:
            page.close()
            server.shutdown_kernels()


def test_setup_notebook_runs_in_jupyterlab(open_notebook, tmp_path):
    page, server = open_notebook("00_setup.ipynb", "lab")
    run_all_cells(page, server, timeout_s=600)
    screenshot(page, tmp_path / "lab-00_setup.png")
    assert "Running inside a virtual environment: True" in page.locator(".jp-Notebook").inner_text()


def test_training_notebook_runs_and_its_panel_trains_in_jupyterlab(open_notebook, tmp_path):
    if not (ROOT / "notebooks" / "03_training.ipynb").exists():  # TEMPORARY: until notebook 03 lands
        pytest.skip("notebooks/03_training.ipynb is not written yet")
    page, server = open_notebook("03_training.ipynb", "lab")
    run_all_cells(page, server, timeout_s=2700)  # a few minutes on two free cores; far more on a busy machine
    screenshot(page, tmp_path / "lab-03_training-run-all.png")
    finished, _ = train_from_the_panel(page, server, timeout_s=1800)
    screenshot(page, tmp_path / "lab-03_training-trained.png")
    assert "finished after" in finished


def _panel_notebook(tmp_path):
    """Notebook 03 cut to its title, its setup cell and the cell that shows the training panel."""
    nb = nbformat.read(ROOT / "notebooks" / "03_training.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    panel = [c for c in code[1:] if "training_panel(" in c.source]
    assert len(panel) == 1, "notebook 03 should show one training panel"
    nb.cells = [nb.cells[0], code[0], panel[0]]
    nbformat.write(nb, tmp_path / "03_training_panel.ipynb")
    return tmp_path / "03_training_panel.ipynb"


def test_training_panel_trains_in_notebook7(open_notebook, tmp_path):
    """The same panel in the Notebook 7 interface (the whole notebook already ran in JupyterLab)."""
    if not (ROOT / "notebooks" / "03_training.ipynb").exists():  # TEMPORARY: until notebook 03 lands
        pytest.skip("notebooks/03_training.ipynb is not written yet")
    page, server = open_notebook(_panel_notebook(tmp_path), "notebook")
    run_all_cells(page, server, timeout_s=900)
    finished, _ = train_from_the_panel(page, server, timeout_s=1800)
    screenshot(page, tmp_path / "notebook7-03_training-trained.png")
    assert "finished after" in finished


def test_the_panel_overlays_two_runs_and_shows_both_runs_answers_in_jupyterlab(open_notebook, tmp_path):
    """Two short runs at different learning rates from the panel: both in the run list and the plot, then both
    answer the same questions side by side. The bundled model with LoRA: tiny-random only answers blank lines."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from llmcourse import TrainConfig, training_panel\n"
        "panel = training_panel(TrainConfig.fast(model='smollm2-135m-instruct', lora=True, max_steps=2, eval_steps=0))\n"
        "panel")])
    nb.metadata.kernelspec = {"name": "llm", "display_name": "Python (LLM)", "language": "python"}
    nbformat.write(nb, tmp_path / "panel.ipynb")
    page, server = open_notebook(tmp_path / "panel.ipynb", "lab")
    run_all_cells(page, server, timeout_s=600)
    assert "No run yet" in page.locator(".jp-OutputArea-output").first.inner_text()  # no empty image before a run
    lrs = [train_from_the_panel(page, server, timeout_s=900)[1] for _ in range(2)]
    runs = page.locator(".llmcourse-runs")
    listed = runs.inner_text()
    assert all(f"{lr:.1e}" in listed for lr in lrs) and listed.count("finished") == 2, listed
    boxes = runs.locator("input[type=checkbox]")
    assert boxes.count() == 2 and all(boxes.nth(i).is_checked() for i in range(2))  # both curves are overlaid
    screenshot(page, tmp_path / "lab-panel-two-runs.png")

    page.locator("button.widget-button", has_text="Ask 3 questions").click()
    answers = page.locator("table.llmcourse-answers")
    wait_for(lambda: answers.count() and all(answers.locator(f"td[data-run='{n}']").count() == 3 for n in (1, 2)),
             "the answers of both runs", 900, page)
    heads = answers.locator("th").all_inner_texts()
    assert heads == ["question", "reference", f"#1 lr {lrs[0]:.1e}", f"#2 lr {lrs[1]:.1e}"], heads
    for n in (1, 2):
        texts = answers.locator(f"td[data-run='{n}']").all_inner_texts()
        assert all(t.strip() and t != "(empty answer)" for t in texts), texts
    screenshot(page, tmp_path / "lab-panel-answers.png")
    assert_no_errors(page)


def test_the_page_checks_catch_widget_errors_and_tracebacks(open_notebook, tmp_path):
    """The negative control: a widget the page cannot display and a failing cell must fail the checks."""
    broken_widget = ("import ipywidgets, traitlets\n"
                     "class Missing(ipywidgets.DOMWidget):\n"
                     "    _model_module = traitlets.Unicode('no-such-module').tag(sync=True)\n"
                     "    _view_module = traitlets.Unicode('no-such-module').tag(sync=True)\n"
                     "    _model_name = traitlets.Unicode('MissingModel').tag(sync=True)\n"
                     "    _view_name = traitlets.Unicode('MissingView').tag(sync=True)\n"
                     "Missing()")
    # what the page shows for widgets when JupyterLab lacks jupyterlab_widgets: their text form
    as_text = "display({'text/plain': 'VBox(children=(IntSlider(value=0),))'}, raw=True)"
    cells = [nbformat.v4.new_code_cell(code) for code in (broken_widget, as_text, "raise ValueError('on purpose')")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata.kernelspec = {"name": "llm", "display_name": "Python (LLM)", "language": "python"}
    nbformat.write(nb, tmp_path / "failing.ipynb")
    page, server = open_notebook(tmp_path / "failing.ipynb", "lab")
    click_menu(page, "Run", "Run All Cells")
    # all three cells run (the failing one is last); then the checks must name all three faults
    wait_until_all_cells_ran(page, timeout_s=120, fail_fast=False)
    expected = "['widget error', 'widget shown as text', 'Traceback (most recent call last)']"
    for _ in range(30):  # the widget manager renders its error a moment after the cell ran
        with pytest.raises(AssertionError) as failure:
            assert_no_errors(page)
        if expected in str(failure.value):
            break
        page.wait_for_timeout(1000)
    assert expected in str(failure.value)
