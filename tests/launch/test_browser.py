"""JupyterLab in a real browser: open notebook 00, Run All, and check what a learner would see.

JupyterLab runs from this venv on a free port, on a temporary copy of the notebooks (the
committed ones are never touched). Headless Chromium, driven by Selenium through Debian's
chromedriver (an explicit path: Selenium Manager never downloads anything), clicks
Run → Run All Cells and waits until every code cell has an execution count and the kernel
is idle. Then it saves the copy and reads it back: the setup check printed its lines, and
errors appear only in cells tagged ``raises-exception``. This also proves that Run All goes
on past such a cell, which the course relies on.

Browser and driver: /usr/bin/chromium and /usr/bin/chromedriver (Debian's chromium and
chromium-driver), or COURSE_BROWSER / COURSE_CHROMEDRIVER. Skipped with the reason when absent.
A screenshot is saved under a temporary directory; its path is printed (pytest -s shows it).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from coursebook import browser
from coursedb.paths import course_root

ROOT = course_root()
NOTEBOOK = "00_start_here.ipynb"
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook tab in front
RUN_TIMEOUT = 240  # a first start of the embedded server plus every cell, on a busy 2-core machine

pytestmark = [
    pytest.mark.skipif(browser.missing() is not None, reason=f"the JupyterLab check: {browser.missing()}"),
    pytest.mark.timeout(RUN_TIMEOUT + 120),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def workspace(tmp: Path) -> Path:
    """A copy of what a notebook needs: the notebooks, conftest.py and the pytest config.

    Files get fresh modification times, as in a new clone (copy2 would keep them). Jupytext's
    pairing compares the times of notebooks/src/*.py and the .ipynb; whether the pair is in
    sync is tests/course/test_pairing.py's job.
    """
    root = tmp / "course"
    ignore = shutil.ignore_patterns(".*", "__pycache__")
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=ignore, copy_function=shutil.copy)
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, root / name)
    return root


class Lab:
    """A JupyterLab server of our own: private config, runtime and data dirs, a known token."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.port = free_port()
        self.token = os.urandom(16).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                         ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython")):  # fmt: skip
            env[var] = str(tmp / sub)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        self.log = (tmp / "jupyterlab.log").open("w")
        args = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.open_browser=False",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",  # no PyPI look-ups from the extension manager
        ]  # fmt: skip
        if os.geteuid() == 0:
            args.append("--allow-root")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"JupyterLab exited with {self.proc.returncode}; see {self.log.name}")
            try:
                self.api("/api/status")
                return
            except (OSError, http.client.HTTPException):  # not listening yet
                if time.monotonic() > deadline:
                    raise AssertionError(f"JupyterLab did not answer in {timeout} s; see {self.log.name}") from None
                time.sleep(0.3)

    def shutdown(self) -> None:
        try:
            for kernel in self.api("/api/kernels"):  # type: ignore[union-attr]
                self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass  # the server is not answering: the process group is ended below either way
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and any kernel it left behind
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


def click_when_ready(driver, locator: tuple[str, str], timeout: float = 30) -> None:
    """Click the element at ``locator`` once it is clickable.

    JupyterLab re-renders cells and menus while it settles; an element found a moment ago
    can be replaced (stale) or not laid out yet. Both are retried until ``timeout``.
    """
    from selenium.common.exceptions import ElementNotInteractableException, StaleElementReferenceException
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    deadline = time.monotonic() + timeout
    while True:
        try:
            WebDriverWait(driver, timeout).until(ec.element_to_be_clickable(locator)).click()
            return
        except (StaleElementReferenceException, ElementNotInteractableException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def click_menu(driver, menu: str, command: str) -> None:
    """Click a main-menu entry, as a learner would; ``command`` is the entry's data-command."""
    from selenium.webdriver.common.by import By

    dialogs = [d.text for d in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog") if d.is_displayed()]
    assert not dialogs, f"JupyterLab shows a dialog instead of the notebook: {dialogs}"
    click_when_ready(driver, (By.XPATH, f"//div[contains(@class,'lm-MenuBar-itemLabel') and text()='{menu}']"))
    click_when_ready(driver, (By.CSS_SELECTOR, f"li.lm-Menu-item[data-command='{command}']"))


def cell_states(driver) -> list[str]:
    # The prompt of each code cell: "[ ]:" not run, "[*]:" queued or running, "[3]:" done.
    return driver.execute_script(
        f"return Array.from(document.querySelectorAll('{PANEL} .jp-Notebook .jp-CodeCell .jp-InputPrompt'))"
        ".map(p => p.textContent.trim());"
    )


def kernel_idle(driver) -> bool:
    return driver.execute_script(
        f"const s = document.querySelector('{PANEL} .jp-Notebook-ExecutionIndicator');"
        "return s !== null && s.getAttribute('data-status') === 'idle';"
    )


def wait_for_run_all(driver, shot: Path) -> list[str]:
    """Wait until nothing is queued, some cell ran, and the kernel stayed idle for 2 s."""
    deadline = time.monotonic() + RUN_TIMEOUT
    quiet_since = None
    while True:
        states = cell_states(driver)
        done = "[*]:" not in states and any(s[1:-2].isdigit() for s in states) and kernel_idle(driver)
        if not done:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 2:
            return states
        if time.monotonic() > deadline:
            driver.save_screenshot(str(shot))
            pytest.fail(f"Run All did not finish in {RUN_TIMEOUT} s; prompts {states}; screenshot {shot}")
        time.sleep(0.25)


class Session:
    """One JupyterLab server and one browser, shared by the tests in this module."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="course-browser-"))
        self.root = workspace(self.tmp)
        self.lab = Lab(self.root, self.tmp)
        self.driver = None

    def open(self, notebook: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        # A workspace of its own per notebook: the page shows this notebook's tab and no other.
        workspace = notebook.removesuffix(".ipynb").replace("_", "-")
        self.driver.get(f"{self.lab.url}/lab/workspaces/{workspace}/tree/notebooks/{notebook}?token={self.lab.token}")
        wait = WebDriverWait(self.driver, 90)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")))
        wait.until(lambda d: kernel_idle(d))
        # Menu commands act on the current notebook: make sure it is this one, and focused,
        # or Run All may run the notebook of the previous tab.
        current = "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel"
        wait.until(lambda d: [t.text for t in d.find_elements(By.CSS_SELECTOR, current)] == [notebook])
        click_when_ready(self.driver, (By.CSS_SELECTOR, f"{PANEL} .jp-Cell .jp-InputPrompt"))

    def run_all(self, shot: Path) -> list[str]:
        # Run → Run All Cells. On a loaded machine a menu click can land before the page
        # handles it; if no cell has started after a while, click again (Run All on an
        # untouched notebook is idempotent).
        for _ in range(3):
            click_menu(self.driver, "Run", "runmenu:run-all")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if any(s != "[ ]:" for s in cell_states(self.driver)):
                    return wait_for_run_all(self.driver, shot)
                time.sleep(0.25)
        return wait_for_run_all(self.driver, shot)

    def close(self) -> None:
        try:
            if self.driver is not None:
                self.driver.quit()
        finally:
            self.lab.shutdown()
            for path in self.tmp.iterdir():  # keep only the screenshots and logs
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                elif path.suffix not in (".png", ".log"):
                    path.unlink()


@pytest.fixture(scope="module")
def session():
    s = Session()
    try:
        s.lab.wait_ready()
        s.driver = browser.chromium(s.tmp)
        yield s
    finally:
        s.close()


def test_run_all_in_jupyterlab_in_chromium(session):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    committed = ROOT / "notebooks" / NOTEBOOK
    before = digest(committed)
    copy = session.root / "notebooks" / NOTEBOOK
    shot = session.tmp / "00_start_here.png"
    driver = session.driver
    begin = time.monotonic()
    try:
        session.open(NOTEBOOK)
        states = session.run_all(shot)
        # JupyterLab sends every cell at once; a failing cell makes the kernel skip the rest
        # unless the cell is tagged raises-exception. Unrun prompts mean Run All stopped early.
        assert "[ ]:" not in states, f"Run All stopped early; prompts {states}"

        page = driver.find_element(By.CSS_SELECTOR, f"{PANEL} .jp-Notebook").text
        assert "backend:" in page, "the setup check printed nothing visible"
        assert "Ready: this notebook has its own database" in page

        click_menu(driver, "File", "docmanager:save")
        WebDriverWait(driver, 30).until(lambda d: all(
            c.get("execution_count") for c in nbformat.read(copy, as_version=4).cells if c.cell_type == "code"
        ))  # fmt: skip
        # Scroll to the setup check for the picture.
        driver.execute_script(
            "const out = Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
            ".find(o => o.textContent.includes('backend:')); if (out) out.scrollIntoView({block: 'center'});"
        )
    finally:
        try:
            driver.save_screenshot(str(shot))
        except Exception:
            pass  # a screenshot helps when it can be had; the test's own failure is what counts
        took = time.monotonic() - begin
        print(f"\nbrowser check: {took:.1f} s; screenshot {shot}; JupyterLab log {session.lab.log.name}")

    nb = nbformat.read(copy, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(isinstance(c.get("execution_count"), int) for c in code), "Run All skipped cells"
    unexpected = []
    expected_failures = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        bad = [o for o in cell.outputs if o.output_type == "error" or o.get("name") == "stderr"]
        if "raises-exception" in cell.metadata.get("tags", []):
            expected_failures += any(o.output_type == "error" for o in bad)
        elif bad:
            unexpected.append((index, cell.source.splitlines()[0], bad))
    assert unexpected == [], f"error output outside raises-exception cells: {unexpected}"
    assert expected_failures >= 1, "the cells tagged raises-exception did not fail, or were not run"
    text = "\n".join(o.get("text", "") for c in code for o in c.outputs)
    assert "backend:" in text and "Ready: this notebook has its own database" in text
    assert digest(committed) == before, "the committed notebook changed"


def test_run_all_goes_on_past_raises_exception_and_stops_at_other_errors(session):
    """The course's contract with JupyterLab, checked on a small notebook of its own."""
    cells = [
        nbformat.v4.new_code_cell("print('first')"),
        nbformat.v4.new_code_cell("raise ValueError('the lesson')", metadata={"tags": ["raises-exception"]}),
        nbformat.v4.new_code_cell("print('after the lesson')"),
        nbformat.v4.new_code_cell("raise ValueError('a real mistake')"),
        nbformat.v4.new_code_cell("print('never')"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, session.root / "notebooks" / "run_all_probe.ipynb")
    session.open("run_all_probe.ipynb")
    shot = session.tmp / "run_all_probe.png"
    states = session.run_all(shot)
    session.driver.save_screenshot(str(shot))
    assert states == ["[1]:", "[2]:", "[3]:", "[4]:", "[ ]:"], states
