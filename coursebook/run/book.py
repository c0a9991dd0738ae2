"""A notebook of the run: nbval's collector, with its kernel started in the learner copies, and the
means to run a cell and read what it showed."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import nbformat
import pytest
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, RunningKernel, start_new_kernel
from nbval.plugin import IPyNbFile

from coursebook.model import Notebook, iter_notebooks, progress_store
from coursebook.run.workbench import WORKBENCH, Workbench
from coursedb import names, progress

# A full garbage collection walks every object the kernel holds, and a checker run makes three (pytest's
# two at session end, the run's own after an answer): in a kernel that has run a notebook, most of a trial.
FREEZE = "import gc; gc.collect(); gc.freeze()"
THAW = "import gc; gc.unfreeze(); gc.collect()"


class CourseKernel(RunningKernel):
    """nbval's kernel with an environment of its own (nbval's constructor takes none): the run's server,
    and no PYTEST_* variables of the process that runs it."""

    def __init__(self, kernel_name: str, cwd: str, startup_timeout: int, env: dict[str, str] | None) -> None:
        extra = {"env": env} if env is not None else {}
        stderr = open(os.devnull, "w")  # noqa: SIM115 (nbval's own choice: the kernel owns its stderr)
        self.km, self.kc = start_new_kernel(
            startup_timeout=startup_timeout, kernel_name=kernel_name, stderr=stderr, cwd=cwd, **extra
        )
        self._ensure_iopub_up()


class Book(IPyNbFile):
    """nbval's notebook, its kernel started in a folder of learner copies; the means to run a cell again
    and read what it showed (items.CourseBook adds the run's own items after nbval's cells)."""

    log_start = 0
    uncounted_spans: list[tuple[int, int]]  # log offsets the budget leaves out (answers that are not the course's)
    cells_run: list[tuple[int, str]]  # (log offset, code) of every cell run, for the budget's report

    @property
    def workbench(self) -> Workbench:
        return self.config.stash[WORKBENCH]

    @functools.cached_property
    def notebook(self) -> Notebook:
        """The notebook's source: solutions, answers, the facts in its header."""
        (notebook,) = iter_notebooks([self.path.stem])
        return notebook

    def kernel_name(self) -> str:
        """nbval's choice: --nbval-current-env, --nbval-kernel-name, else the notebook's kernelspec."""
        option = self.config.option
        if option.nbval_current_env:
            return CURRENT_ENV_KERNEL_NAME
        return option.nbval_kernel_name or self.nb.metadata.get("kernelspec", {}).get("name", "python")

    def setup(self) -> None:
        from nbval.cover import setup_coverage

        bench = self.workbench
        self.uncounted_spans, self.cells_run = [], []
        if bench.log is not None:
            self.log_start = bench.log.stat().st_size
        cwd = str(bench.folder_for(self.path.stem) / "notebooks")
        timeout = self.config.option.nbval_kernel_startup_timeout
        self.progress = progress_store()  # its kernel's checker runs, and nobody else's
        env = {**(bench.kernel_env or os.environ), progress.ENV: str(self.progress)}
        self.kernel = CourseKernel(self.kernel_name(), cwd, timeout, env)
        self.setup_sanitize_files()
        if getattr(self.config.option, "cov_source", None):  # pytest-cov's --cov, as nbval does
            setup_coverage(self.config, self.kernel, getattr(self, "fspath", None))
        self.family = Family(self.kernel.km.provisioner.pid)

    def get_sanitize_files(self) -> list[str]:
        """nbval's, with a relative path read from pytest's rootdir (course.py runs there; a test may not)."""
        return [str(self.config.rootpath / name) for name in super().get_sanitize_files()]

    def teardown(self) -> None:
        self.family.stop()
        super().teardown()
        shutil.rmtree(self.progress, ignore_errors=True)

    def log_offset(self) -> int | None:
        """How far the run's server log has grown since this kernel started; None if nothing is logged."""
        log = self.workbench.log
        return None if log is None else log.stat().st_size - self.log_start

    @functools.cached_property
    def committed_cells(self) -> list[Any]:
        """The notebook's cells as committed (nbval changes its own copy's outputs as it compares)."""
        return nbformat.read(self.path, as_version=4).cells

    def code_cells(self) -> list[tuple[int, Any]]:
        return [(i, cell) for i, cell in enumerate(self.committed_cells) if cell.cell_type == "code"]

    def run(self, code: str, timeout: float) -> Ran:
        """Execute ``code`` as one cell; a cell still running after ``timeout`` is interrupted."""
        ran = Ran()
        at = self.log_offset()
        if at is not None:
            self.cells_run.append((at, code))

        def collect(msg: dict) -> None:
            if msg["msg_type"] in ("stream", "error", "execute_result", "display_data"):
                ran.outputs.append(nbformat.v4.output_from_msg(msg))

        try:
            self.kernel.kc.execute_interactive(code, output_hook=collect, timeout=timeout, allow_stdin=False)
        except TimeoutError:
            self.kernel.km.interrupt_kernel()
            self.kernel.kc.execute_interactive("", timeout=60)  # the interrupted cell has ended
            ran.timed_out = True
        return ran

    @contextlib.contextmanager
    def older_objects_frozen(self) -> Iterator[None]:
        """Many checker runs in a row with the kernel's older objects out of the garbage collector's walk
        (gc.freeze): each collection then looks only at what the runs made, which is where an answer's
        garbage (a never-awaited coroutine) is. Older objects that become garbage meanwhile are collected
        when the block ends; until then a connection they hold stays open, so the budget can only see more."""
        timeout = self.config.option.nbval_cell_timeout
        self.run(FREEZE, timeout)
        try:
            yield
        finally:
            if self.kernel.is_alive():  # a dead kernel's report says so already; no cell would answer
                self.run(THAW, timeout)

    def visible(self, cell: Any, failing: bool = False) -> str:
        """What a reader sees of a cell's outputs, volatile parts sanitized as nbval does. Of a cell that
        fails on purpose only its error: a pitfall's report may show other generated examples on a rerun."""
        errors = [out for out in cell.outputs if out.output_type == "error"]
        text = "".join(output_text(out) for out in (errors if failing else cell.outputs))
        for regex, replace in self.sanitize_patterns.items():
            text = re.sub(regex, replace, text)
        return text


class Family(threading.Thread):
    """The pids of a kernel and of every process it started, seen every 0.1 s while it runs.

    Only to tell its sessions in the server's log from another kernel's; the count is the log's."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pids = {pid}
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        import psutil

        root = next(iter(self.pids))
        while not self.done.wait(0.1):
            try:
                self.pids |= {child.pid for child in psutil.Process(root).children(recursive=True)}
            except psutil.Error:
                return  # the kernel has ended: its family is complete

    def stop(self) -> None:
        self.done.set()

    def owns(self, database: str, application_name: str) -> bool:
        """A session on a database coursedb made for one of these pids, or one that names such a pid."""
        return names.session_pid(database, application_name) in self.pids


@dataclass
class Ran:
    """What one cell run showed."""

    outputs: list[Any] = field(default_factory=list)
    timed_out: bool = False

    @property
    def failed(self) -> bool:
        return self.timed_out or any(out.output_type == "error" for out in self.outputs)

    @property
    def text(self) -> str:
        plain = "".join(output_text(out) for out in self.outputs) + ("TIMEOUT" if self.timed_out else "")
        return re.sub(r"\s+", " ", re.sub(r"\x1b\[[0-9;]*m", "", plain))


def output_text(out: Any) -> str:
    if out.output_type == "stream":
        return out.text
    if out.output_type == "error":
        return f"{out.ename}: {out.evalue}"
    return out.get("data", {}).get("text/plain", "")


def where(index: int, cell: Any) -> str:
    """How a report names a cell: its index and first line."""
    return f"cell {index} ({cell.source.strip().splitlines()[0][:60]!r})"


class NotebookProblems(Exception):
    """What an item found wrong, one sentence each: its report lists them (no traceback)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def report(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    """An item's report for NotebookProblems; None for anything else (pytest's own report then)."""
    if isinstance(excinfo.value, NotebookProblems):
        return "\n".join(excinfo.value.problems)
    return None


class StrictBook(IPyNbFile):
    """nbval's own collector (``--nbval-only``), its kernel with an empty progress store of its own
    (nbval's kernel takes this process's environment as it starts)."""

    def setup(self) -> None:
        self.progress = progress_store()
        before = os.environ.get(progress.ENV)
        os.environ[progress.ENV] = str(self.progress)
        try:
            super().setup()
        finally:
            if before is None:
                del os.environ[progress.ENV]
            else:
                os.environ[progress.ENV] = before

    def teardown(self) -> None:
        super().teardown()
        shutil.rmtree(self.progress, ignore_errors=True)
