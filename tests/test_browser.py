"""The course in a real browser: JupyterLab and Notebook 7 in Debian's headless Chromium run the notebooks
as a learner does (Run All, then the training widgets), with no widget errors or tracebacks on the page.

Screenshots go to each test's tmp_path, and to $LLMCOURSE_SCREENSHOTS when that is set.
"""
import os
import re
import time

import nbformat
import pytest

from browser_helpers import (
    CHROMIUM, ROOT, JupyterServer, assert_no_errors, chromium, click_menu, kernel_status, launcher_kernels, open_page,
    prompts, run_all_cells, run_table, saved_run_path, screenshot, train_from_the_panel, wait_for, wait_for_kernel,
    wait_until_all_cells_ran,
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


def test_setup_notebook_runs_in_jupyterlab_as_the_course_set_it_up(open_notebook, tmp_path):
    """Notebook 00 in JupyterLab with the course's Jupyter settings (jupyter-config/, what setup_kernel.sh installs):
    the notebook opens without the unsaved-changes dot, the Launcher offers only the course's kernel, and no "get
    Jupyter news?" pop-up asks anything."""
    page, server = open_notebook("00_setup.ipynb", "lab")
    time.sleep(1)  # the kernel is ready: JupyterLab has written its language_info into the notebook's metadata
    assert page.locator(".lm-TabBar-tab.jp-mod-dirty").count() == 0, "the notebook opened marked as changed"
    run_all_cells(page, server, timeout_s=600)
    screenshot(page, tmp_path / "lab-00_setup.png")
    assert "Running inside a virtual environment: True" in page.locator(".jp-Notebook").inner_text()
    assert list(server.api("GET", "/api/kernelspecs")["kernelspecs"]) == ["llm"]  # not also "python3"
    news = server.api("GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert news["schema"]["properties"]["fetchNews"]["default"] == "false"  # the course's override, as default
    assert page.get_by_text("Jupyter news").count() == 0  # the toast would ask "...official Jupyter news?"
    assert launcher_kernels(page) == ["Python (LLM)"]
    screenshot(page, tmp_path / "lab-launcher.png")


def _cut_notebook_03(tmp_path, *, finetune: bool):
    """Notebook 03 cut to what a browser test needs: its title, its setup cell, (with finetune) the main finetune
    (`run = train(config ...)`) with the cell that makes its config, and the cell that shows the training panel.
    The whole notebook runs once in the suite, under nbmake."""
    nb = nbformat.read(ROOT / "notebooks" / "03_training.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    panel = [c for c in code[1:] if "training_panel(" in c.source]
    assert len(panel) == 1, "notebook 03 should show one training panel"
    cells = [nb.cells[0], code[0]]
    if finetune:
        at = next((i for i, c in enumerate(code) if "\nrun = train(config" in "\n" + c.source), None)
        assert at is not None, "notebook 03 should have its main finetune, a cell with a line `run = train(config`"
        made = next((c for c in reversed(code[1:at]) if "config = " in c.source), None)
        assert made is not None, "notebook 03 should make the main finetune's `config` in a cell before it"
        cells += [made, code[at]]
    nb.cells = cells + panel
    name = "03_training_cut.ipynb" if finetune else "03_training_panel.ipynb"
    nbformat.write(nb, tmp_path / name)
    return tmp_path / name


def _panel_notebook(tmp_path):
    """Notebook 03 cut to its title, its setup cell and the cell that shows the training panel."""
    return _cut_notebook_03(tmp_path, finetune=False)


def _assert_table_matches_the_history(page, finished_messages):
    """The panel's table shows, for each run, the end of the smoothed (bold) train curve, the last step's loss and
    the last validation loss of the history the run saved."""
    from llmcourse.plots.figures import SMOOTHING, smooth
    from llmcourse.training.runs import load_run

    shown = run_table(page)
    assert set(shown) >= {"train loss, smoothed", "last step", "validation loss", "steps"}, shown
    for i, message in enumerate(finished_messages):
        run = load_run(saved_run_path(message))
        losses = [v for _, v in run.losses()]
        evals = run.losses("eval_loss")
        expected = {"train loss, smoothed": str(round(smooth(losses, SMOOTHING)[-1], 4)),
                    "last step": str(round(losses[-1], 4)), "steps": str(run.history[-1]["step"]),
                    "validation loss": str(round(evals[-1][1], 4)) if evals else "–"}
        assert {k: shown[k][i] for k in expected} == expected, (run.name, shown)
    return run


def test_training_notebook_finetunes_with_a_true_kernel_status_and_its_panel_trains_in_jupyterlab(open_notebook,
                                                                                                 tmp_path):
    """Notebook 03's main finetune and its panel in JupyterLab: while `train(config)` runs, the status bar says
    Busy (never Idle); the panel's run table matches the saved history, and its short run evaluates 3 times."""
    page, server = open_notebook(_cut_notebook_03(tmp_path, finetune=True), "lab")
    click_menu(page, "Run", "Run All Cells")
    seen, idle_streak = [], 0
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:  # sample the status bar while the finetune (the 3rd of 4 code cells) runs
        found = prompts(page)
        if len(found) == 4 and all(re.fullmatch(r"\[\d+\]:", p) for p in found[:2]) and found[2] == "[*]:":
            status = kernel_status(page)
            seen.append(status)
            idle_streak = idle_streak + 1 if status == "Idle" else 0  # one sample may fall between two cells
            assert idle_streak < 3, f"the status bar said Idle while the finetune ran: {seen}"
        elif len(found) == 4 and re.fullmatch(r"\[\d+\]:", found[2]):
            break
        assert_no_errors(page)
        page.wait_for_timeout(250)
    assert seen.count("Busy") >= 3, seen  # it was sampled while it ran
    wait_until_all_cells_ran(page, timeout_s=1800)
    wait_for_kernel(page, server)
    assert_no_errors(page)
    screenshot(page, tmp_path / "lab-03_training-cut.png")
    finished, _ = train_from_the_panel(page, server, timeout_s=1800)
    screenshot(page, tmp_path / "lab-03_training-trained.png")
    assert "finished after" in finished
    run = _assert_table_matches_the_history(page, [finished])
    evals = [step for step, _ in run.losses("eval_loss")]
    assert len(evals) >= 3 and evals[0] == 0 and evals[-1] == run.history[-1]["step"], evals


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
    trained = [train_from_the_panel(page, server, timeout_s=900) for _ in range(2)]
    lrs = [lr for _, lr in trained]
    _assert_table_matches_the_history(page, [message for message, _ in trained])
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
