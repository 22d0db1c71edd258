"""The course in a real browser: JupyterLab and Notebook 7 in headless Chromium run the notebooks
as a learner does (Run All, then the training widgets), with no widget errors or tracebacks."""
import os
import re

import pytest

from browser_helpers import (
    CHROMIUM, JupyterServer, assert_no_errors, chromium, click_menu, drag_slider, image_loaded, open_page, screenshot,
    wait_for, wait_for_kernel, wait_for_kernel_to_settle, wait_until_all_cells_ran,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]
pytest.importorskip("playwright", reason="pip install -r requirements.txt (playwright)")


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with JupyterServer("lab", tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="module")
def classic(tmp_path_factory):
    with JupyterServer("notebook", tmp_path_factory.mktemp("notebook")) as server:
        yield server


def _run_all(browser, server, url_path, tmp_path, shot, timeout_s):
    """Opens url_path, runs every cell from the Run menu, checks the page, saves a screenshot."""
    console = []
    page = open_page(browser, server.url(url_path), console)
    try:
        wait_for_kernel(page, server)
        click_menu(page, "Run", "Run All Cells")
        wait_until_all_cells_ran(page, timeout_s)
        wait_for_kernel(page, server)
        assert_no_errors(page)
        return page
    except BaseException:
        screenshot(page, tmp_path / f"FAILED-{shot}")
        print("browser console:", *console[-20:], sep="\n  ")
        print("server log:", server.log_tail(), sep="\n")
        raise
    finally:
        screenshot(page, tmp_path / shot)


def _train_from_the_panel(page, server, tmp_path, shot, timeout_s=600):
    """Moves the learning-rate slider, presses Train, waits for the live plot and the finished message."""
    try:
        # the training panel (llmcourse.widgets.TrainingPanel): the outermost box holding a Train button
        train = page.locator("button.widget-button", has_text=re.compile(r"^\s*Train\s*$"))
        panel = page.locator(".widget-vbox", has=train).first
        slider = panel.locator(".widget-slider", has=page.locator(".widget-label", has_text="learning rate"))
        readout = slider.locator(".widget-readout")
        before = readout.inner_text()
        drag_slider(page, slider, dx=-20)  # with the mouse: Notebook 7 takes arrow keys for itself
        after = readout.inner_text()
        assert float(after) < float(before), (before, after)
        wait_for_kernel_to_settle(server)

        panel.locator(train).click()
        status = panel.locator(".widget-html")
        finished = wait_for(lambda: next((t for t in status.all_inner_texts() if "finished after" in t), None),
                            "the finished message", timeout_s, page)
        # Train comes back once the thread is done, after the plot's final frame was sent
        wait_for(lambda: panel.locator(train).is_enabled(), "the Train button enabled again", 60, page)
        plot = panel.locator(":scope > img.widget-image")  # the loss plot sits under the controls
        wait_for(lambda: image_loaded(plot), "the loss plot", 60, page)
        assert_no_errors(page)
        # the run is named after its settings: it used the learning rate the slider shows
        lr = f"{float(after):.1e}".replace(".0e", "e")
        assert f"-lr{lr}-" in finished, f"trained with another learning rate than the slider's {after}: {finished}"
        panel.scroll_into_view_if_needed()
    finally:
        screenshot(page, tmp_path / shot)


def test_setup_notebook_runs_in_jupyterlab(browser, lab, tmp_path):
    name = lab.copy_notebook("00_setup.ipynb")
    try:
        page = _run_all(browser, lab, f"/lab/tree/{name}", tmp_path, "lab-00_setup.png", timeout_s=600)
        assert "Running inside a virtual environment: True" in page.locator(".jp-Notebook").inner_text()
    finally:
        lab.shutdown_kernels()


def test_setup_notebook_runs_in_notebook7(browser, classic, tmp_path):
    name = classic.copy_notebook("00_setup.ipynb")
    try:
        page = _run_all(browser, classic, f"/notebooks/{name}", tmp_path, "notebook7-00_setup.png", timeout_s=600)
        assert "Running inside a virtual environment: True" in page.locator(".jp-Notebook").inner_text()
    finally:
        classic.shutdown_kernels()
