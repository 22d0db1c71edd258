"""Machinery for the real-browser test: a private Jupyter server, headless Chromium, and page actions.

Every process started here is stopped by the context managers, also when a test fails.
"""
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # the machine's network is closed: no background connections to Google services
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Server flags that keep Jupyter away from the user's own state. Staying offline (no news, no update check) and
# offering only the kernel "llm" come from the course's own Jupyter settings, as setup_kernel.sh installs them.
SERVER_ARGS = [
    "--no-browser",
    "--ServerApp.ip=127.0.0.1",
    "--ServerApp.port_retries=0",
    "--ServerApp.terminals_enabled=False",
    "--LabApp.extension_manager=readonly",
]
# What setup_kernel.sh copies into .venv (jupyter-config/README.md): the servers here read these very files, from a
# private config dir and settings dir, so the tests check the course's settings even in a venv set up before them.
COURSE_SERVER_CONFIG = ROOT / "jupyter-config" / "jupyter_server_config.json"
COURSE_LAB_SETTINGS = ROOT / "jupyter-config" / "lab-settings" / "overrides.d" / "llmcourse.json"
COURSE_KERNEL_CONFIG = ROOT / "jupyter-config" / "ipython_kernel_config.json"  # read from the private IPYTHONDIR
SETTINGS_APP = {"lab": "LabApp", "notebook": "JupyterNotebookApp"}  # whose app_settings_dir holds overrides.d
# Attach every cell to the DOM, so the error checks see the whole notebook, not only the viewport.
USER_SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"}}
OUTPUT_ERRORS = {  # what is wrong: how it shows in a cell's output
    "Error displaying widget": "Error displaying widget",  # e.g. its model is gone
    "widget error": "Click to show javascript error",  # ipywidgets could not build the view
    "widget shown as text": re.compile(r"\b(?:[HV]?Box|GridBox|Tab|Accordion)\(children="),  # no widget manager
    "Traceback (most recent call last)": "Traceback (most recent call last)",  # a cell or a thread failed
}


def free_port():
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def server_env(home):
    """The environment of the server and its kernels: fast mode, inline plots, offline, private Jupyter dirs."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel must use the inline backend, as a learner's does
    env.update(
        LLMCOURSE_FAST="1",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        LLMCOURSE_RUNS=str(home / "runs"),
        # fresh config/data/runtime dirs: no workspace or settings from earlier runs; the kernel "llm"
        # is still found because it is registered inside .venv (sys.prefix/share/jupyter)
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
    )
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    shutil.copy(COURSE_SERVER_CONFIG, config / COURSE_SERVER_CONFIG.name)
    profile = home / "ipython" / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    shutil.copy(COURSE_KERNEL_CONFIG, profile / COURSE_KERNEL_CONFIG.name)
    (home / "lab-settings" / "overrides.d").mkdir(parents=True, exist_ok=True)
    shutil.copy(COURSE_LAB_SETTINGS, home / "lab-settings" / "overrides.d" / COURSE_LAB_SETTINGS.name)
    for name, settings in USER_SETTINGS.items():
        _write_json(config / "lab" / "user-settings" / name, settings)
    return env


class JupyterServer:
    """`jupyter lab` or `jupyter notebook` from the project's venv on 127.0.0.1, a random port and token."""

    def __init__(self, app, home, startup_timeout=120):
        self.app, self.home = app, Path(home)
        self.root = self.home / "notebooks"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / f"{app}-server.log"
        self.startup_timeout = startup_timeout
        self.proc = None
        self._children = set()

    def start(self):
        """Starts the server and waits until /api/status answers."""
        cmd = [str(ROOT / ".venv" / "bin" / "jupyter"), self.app, *SERVER_ARGS,
               f"--ServerApp.port={self.port}", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}",
               f"--{SETTINGS_APP[self.app]}.app_settings_dir={self.home / 'lab-settings'}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=server_env(self.home), stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter {self.app} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                self.api("GET", "/api/status")
                return self
            time.sleep(0.5)
        raise RuntimeError(f"jupyter {self.app} did not answer in {self.startup_timeout} s:\n{self.log_tail()}")

    def api(self, method, path, timeout=10, tries=5):
        """Calls the server's REST API with the token; returns the decoded JSON (or None).

        A GET that answers 500 is asked again a few times: while a kernel is starting, jupyter_server's
        GET /api/kernels can fail with "'last_activity' ... expected a datetime, not the NoneType None".
        """
        req = urllib.request.Request(self.base + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        for attempt in range(tries if method == "GET" else 1):
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    body = resp.read()
                return json.loads(body) if body else None
            except urllib.error.HTTPError as error:
                if error.code < 500 or attempt == tries - 1 or method != "GET":
                    raise
                time.sleep(0.5)

    def url(self, path, **query):
        """The address of path with the token (and query parameters) for a first visit."""
        return f"{self.base}{path}?" + urllib.parse.urlencode({**query, "token": self.token})

    def copy_notebook(self, source):
        """A private copy of a notebook (Jupyter autosaves into the file it opens); returns its name."""
        source = Path(source)
        shutil.copy(source if source.is_absolute() else ROOT / "notebooks" / source, self.root / source.name)
        return source.name

    def remember_children(self):
        """Records the server's descendants (kernels run in their own session, outside its group)."""
        with contextlib.suppress(psutil.Error):
            self._children.update(psutil.Process(self.proc.pid).children(recursive=True))

    def shutdown_kernels(self):
        """Stops every kernel the server runs, freeing memory between tests."""
        self.remember_children()
        with contextlib.suppress(OSError, ValueError):
            for kernel in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=30)

    def stop(self):
        """Asks the server to shut down, then kills whatever is left of it and its kernels."""
        if self.proc is None:
            return
        self.remember_children()
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.api("POST", "/api/shutdown")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for child in self._children:
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.proc.wait(10)
        self._log.close()

    def log_tail(self, lines=40):
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


@contextlib.contextmanager
def chromium():
    """Headless Debian Chromium driven by Playwright (no browser download); closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


# ---- pages ------------------------------------------------------------------------------------------
def open_page(browser, url, console):
    """A fresh page (own cookies and storage) at url; browser errors are appended to console."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)  # two shared cores: Lab can take a while to lay out
    page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
    page.on("console", lambda msg: msg.type == "error" and console.append(f"console: {msg.text}"))
    page.goto(url, timeout=120_000)
    return page


def screenshot(page, path):
    """Saves a PNG at path, and a copy in $LLMCOURSE_SCREENSHOTS when that is set."""
    page.screenshot(path=str(path))
    if os.environ.get("LLMCOURSE_SCREENSHOTS"):
        target = Path(os.environ["LLMCOURSE_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / Path(path).name)
    return path


def wait_for_kernel(page, server, timeout_s=180):
    """Waits until the page is connected to an idle kernel; fails with the text of any dialog instead.

    The page's status indicator says "idle" before any kernel exists, so the server must also report
    a kernel with a connection (the page's) that is idle.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert_no_dialog(page)
        kernels = server.api("GET", "/api/kernels")
        ready = kernels and all(k["connections"] and k["execution_state"] == "idle" for k in kernels)
        if ready and page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"no idle kernel after {timeout_s} s: {server.api('GET', '/api/kernels')}")


def wait_for_kernel_to_settle(server, quiet_s=3.0, timeout_s=120):
    """Waits until every kernel has stayed idle for quiet_s.

    While the kernel is busy, ipywidgets queues slider updates in the page and sends them one at a time,
    but sends button clicks at once: a click right after moving a slider can reach the kernel first.
    """
    deadline, idle_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if all(k["execution_state"] == "idle" for k in server.api("GET", "/api/kernels")):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= quiet_s:
                return
        else:
            idle_since = None
        time.sleep(0.25)
    raise AssertionError(f"the kernel stayed busy for {timeout_s} s")


def assert_no_dialog(page):
    """No modal dialog (e.g. "Select Kernel" when the kernel "llm" is not registered)."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        raise AssertionError(f"a dialog blocks the notebook: {dialog.first.inner_text()!r}")


def assert_no_errors(page):
    """No widget error, widget shown as text, or traceback in any cell output on the page."""
    text = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    hits = {what: re.search(sign if isinstance(sign, re.Pattern) else re.escape(sign), text)
            for what, sign in OUTPUT_ERRORS.items()}
    found = {what: hit.start() for what, hit in hits.items() if hit}
    if found:
        at = min(found.values())
        raise AssertionError(f"{list(found)} in the outputs:\n{text[max(0, at - 300):at + 1200]}")


def wait_for(predicate, what, timeout_s, page, poll_ms=1000):
    """Polls predicate() until it is true, failing fast on errors on the page; returns its value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert_no_dialog(page)
        assert_no_errors(page)
        page.wait_for_timeout(poll_ms)
    raise AssertionError(f"{what}: not seen after {timeout_s} s")


# ---- notebook actions -------------------------------------------------------------------------------
def click_menu(page, menu, item):
    """Clicks a menu bar entry, then one of its items, as a user does (JupyterLab and Notebook 7)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$")).click()


def prompts(page):
    """The input prompts of the notebook's code cells, e.g. ['[1]:', '[*]:', '[ ]:']."""
    return [p.strip() for p in page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()]


def wait_until_all_cells_ran(page, timeout_s, fail_fast=True):
    """Waits until every code cell has an execution count and none is queued or running.

    fail_fast: stop at the first error on the page (a traceback stops Run All and leaves '[ ]:' behind)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = prompts(page)
        if found and all(re.fullmatch(r"\[\d+\]:", p) for p in found):
            return found
        assert_no_dialog(page)
        if fail_fast:
            assert_no_errors(page)
        page.wait_for_timeout(1000)
    raise AssertionError(f"cells still not run after {timeout_s} s: {prompts(page)}")


def run_all_cells(page, server, timeout_s):
    """Run > Run All Cells, then waits for every cell and the kernel; no errors on the page."""
    click_menu(page, "Run", "Run All Cells")
    wait_until_all_cells_ran(page, timeout_s)
    wait_for_kernel(page, server)
    assert_no_errors(page)


def drag_slider(page, slider, dx):
    """Drags an ipywidgets slider's handle dx pixels sideways with the mouse, as a user does."""
    handle = slider.locator(".noUi-handle")
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=5)
    page.mouse.up()


def image_loaded(img):
    """True when the <img> element shows a decoded picture."""
    return img.count() > 0 and img.first.evaluate("e => e.complete && e.naturalWidth > 0")


def train_from_the_panel(page, server, timeout_s=600):
    """In the training panel (llmcourse.notebook.widgets.TrainingPanel): drags the learning-rate slider, presses Train,
    waits for the finished message and the loss plot; checks the run used the slider's learning rate.
    Returns the finished message and the learning rate the slider showed."""
    train = page.locator("button.widget-button", has_text=re.compile(r"^\s*Train\s*$"))
    panel = page.locator(".widget-vbox", has=train).first  # the outermost box holding a Train button
    slider = panel.locator(".widget-slider", has=page.locator(".widget-label", has_text="learning rate"))
    readout = slider.locator(".widget-readout")
    before = readout.inner_text()
    drag_slider(page, slider, dx=-20)  # with the mouse: Notebook 7 takes arrow keys for itself
    after = readout.inner_text()
    assert float(after) < float(before), f"the slider did not move: {before} -> {after}"
    wait_for_kernel_to_settle(server)

    panel.locator(train).click()
    status = panel.locator(".widget-html")
    # runs are named after their settings (TrainConfig.name): this one uses the slider's learning rate. Waiting
    # for that name also skips the finished message of a run the panel trained before.
    lr = f"{float(after):.1e}".replace(".0e", "e")
    finished = wait_for(lambda: next((t for t in status.all_inner_texts() if "finished after" in t and f"-lr{lr}-" in t),
                                     None), f"the finished message of the run at {after}", timeout_s, page)
    # Train comes back once the thread is done, after the plot's final frame was sent
    wait_for(lambda: panel.locator(train).is_enabled(), "the Train button enabled again", 60, page)
    plot = panel.locator("img.llmcourse-loss-plot")  # the overlay under the controls
    wait_for(lambda: image_loaded(plot), "the loss plot", 60, page)
    assert_no_errors(page)
    panel.scroll_into_view_if_needed()
    return finished, float(after)


# ---- what the learner sees ----------------------------------------------------------------------------
def kernel_status(page):
    """The kernel's state as JupyterLab's status bar shows it ("Python (LLM) | Busy" -> "Busy"), or None."""
    for text in page.locator(".jp-StatusBar-Widget").all_inner_texts():
        found = re.search(r"Python \(LLM\)\s*\|\s*(\w+)", text)
        if found:
            return found.group(1)
    return None


def launcher_kernels(page):
    """The kernels JupyterLab's Launcher offers for a new notebook (File > New Launcher)."""
    click_menu(page, "File", "New Launcher")
    section = page.locator(".jp-Launcher-section", has=page.locator(".jp-Launcher-sectionTitle", has_text="Notebook"))
    wait_for(lambda: section.locator(".jp-LauncherCard").count(), "the Launcher's notebook cards", 60, page)
    return section.first.locator(".jp-LauncherCard-label").all_inner_texts()


def run_table(page):
    """The panel's run table as the page shows it: {column: [one text per run]} (llmcourse-runs, data-col)."""
    table = page.locator(".llmcourse-runs")
    names = table.locator("span[data-col]").evaluate_all("es => [...new Set(es.map(e => e.dataset.col))]")
    return {name: table.locator(f"span[data-col='{name}']").all_inner_texts()[1:] for name in names}  # [0]: header


def saved_run_path(finished):
    """The run folder named in the panel's finished message ("... Saved in /path/to/run. ...")."""
    return Path(re.search(r"Saved in (.+?)\.(?:\s|$)", finished).group(1))
