"""The course's watch over ``%%ipytest`` cells: a pytest plugin object, one per run (``Watch``).

Inside a kernel pytest runs in a thread of its own (the kernel's event loop already runs in
the main thread). pytest-timeout cannot stop a thread: its thread method dumps every stack
and calls ``os._exit(1)``, which kills the kernel. The course's ``%%ipytest`` magic
(coursedb.notebook) gives each run a ``Watch`` as a plugin (``ipytest.run(plugins=[watch])``); it
takes over pytest-timeout's timer there (through its ``pytest_timeout_set_timer`` hook, so
``--timeout N`` and ``@pytest.mark.timeout`` still set the limit) and stops an overdue test gently:

1. cancel the asyncio tasks of the event loop the test runs on (an ``await`` that never ends);
2. if that did not end it within GRACE seconds, raise ``TestStopped`` inside the pytest thread
   (a busy loop in plain Python);
3. if even that fails (a thread blocked outside Python, e.g. ``time.sleep``), give up and say
   that the kernel must be restarted.

The stopped test fails with one sentence; the kernel stays usable. Outside kernels (the
reference suite from the command line) there is no watch and pytest-timeout keeps its own limit.

PYTEST_DONT_REWRITE: the kernel imports this module before pytest does; no assert lives here.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
import threading
from collections.abc import Generator
from typing import Any

import pytest

from . import progress

GRACE = 3.0  # seconds a stopped test gets to wind down before the next, harder step


INTERRUPTED = "Kernel → Interrupt"  # what a run stopped by the learner's interrupt has as session.shouldstop


class TestStopped(BaseException):
    """Raised inside a test that ran too long. BaseException: ``except Exception`` must not swallow it."""

    __test__ = False  # not a test class, whatever pytest's name rules say


class Watch:
    """One ``%%ipytest`` run: its pytest thread, the running test and its timer, what failed and why.

    The kernel's main thread holds it too, to stop the run on Kernel → Interrupt."""

    def __init__(self) -> None:
        self.thread_id: int | None = None
        self.session: pytest.Session | None = None
        self.item: pytest.Item | None = None
        self.item_done = threading.Event()
        self.timer: threading.Timer | None = None
        self.failed: list[str] = []  # node ids, in order, once each
        self.stopped: dict[str, str] = {}  # node id -> the sentence shown for it
        self.stuck: str | None = None  # set when a test could not be stopped at all
        self.fails_on_purpose = False
        self.exercise: str | None = None  # `%%ipytest --exercise N.M`: a checker cell, its outcome is recorded
        self.checks: dict[str, str] = {}  # check id (the test's name) -> the sentence its failure said

    # --- pytest hooks ------------------------------------------------------------------------------

    def pytest_addoption(self, parser: pytest.Parser) -> None:
        parser.addoption(
            "--fails-on-purpose",
            action="store_true",
            help="this cell shows a failure the notebook explains (the line under the report says so)",
        )

    def pytest_configure(self, config: pytest.Config) -> None:
        self.thread_id = threading.get_ident()
        self.fails_on_purpose = config.getoption("fails_on_purpose")
        self.exercise = config.getoption("exercise", default=None)  # coursedb.checks registers it

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, Any]:
        self.item, self.item_done = item, threading.Event()
        try:
            return (yield)
        finally:
            self.item_done.set()
            if self.timer is not None:
                self.timer.cancel()
                self.timer.join()
                self.timer = None
            self.item = None

    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool:
        """Replace pytest-timeout's timer (which would kill the kernel) with a gentle one."""
        what = f"this test ran longer than {settings.timeout:g} s"
        self.timer = threading.Timer(settings.timeout, self.stop_test, (item, self.item_done, what))
        self.timer.daemon = True
        self.timer.start()
        return True

    def pytest_timeout_cancel_timer(self, item: pytest.Item) -> bool:
        # pytest-timeout also cancels after every failed phase; our timer keeps running until the
        # item's teardown ends (a hang there, e.g. closing a pool, must be stopped too).
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, Any]:
        report = yield
        sentence = self.stopped.get(item.nodeid)
        if sentence and report.failed and not getattr(item, "_course_stop_reported", False):
            report.longrepr = sentence  # instead of a CancelledError traceback through asyncio
            item._course_stop_reported = True
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed and report.nodeid not in self.failed:
            self.failed.append(report.nodeid)
        if report.failed and self.exercise:
            self.checks.setdefault(progress.check_id(report.nodeid), progress.sentence(report.longrepr))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """A checker's verdict is recorded: passed, or which checks failed. Not an interrupted run, nor one
        that could not run its tests (a learner's syntax error is not a try of the exercise's checks)."""
        verdict = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        if self.exercise and verdict and session.shouldstop != INTERRUPTED and not self.stuck:
            failed = [progress.Failed(check, said) for check, said in self.checks.items()]
            progress.record(self.exercise, exitstatus == pytest.ExitCode.OK, failed)

    # --- stopping ----------------------------------------------------------------------------------

    def stop_test(self, item: pytest.Item, done: threading.Event, what: str) -> None:
        """Stop ``item``, which runs in pytest's thread; called from another thread."""
        if done.is_set():
            return
        self.stopped[item.nodeid] = f"{what} and was stopped"
        loop = _loop_running_in(self.thread_id)
        if loop is not None:
            loop.call_soon_threadsafe(_cancel_all_tasks, loop)
            if done.wait(GRACE):
                return
        _raise_in_thread(self.thread_id, TestStopped)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: None)  # wake its selector so the exception is raised
        if not done.wait(GRACE):
            self.stuck = (
                f"{what} and could not be stopped (it waits outside Python, e.g. in time.sleep): "
                "restart the kernel (Kernel → Restart Kernel), then run the setup cell again."
            )

    def interrupt(self) -> None:
        """Kernel → Interrupt while tests run: stop the running test and skip the rest of the cell."""
        if self.session is not None:
            self.session.shouldstop = INTERRUPTED
        item = self.item
        if item is not None:
            self.stop_test(item, self.item_done, "this test was interrupted (Kernel → Interrupt)")

    def verdict(self, exit_code: int | None, interrupted: bool) -> str | None:
        """The one line under a red cell's pytest report, or None if the cell is green."""
        if self.stuck:
            return self.stuck
        if interrupted:
            return "The tests were interrupted (Kernel → Interrupt); the kernel is ready for the next cell."
        if exit_code == 0:
            return None
        if exit_code == 5:
            return "No tests ran: this cell defines no test_ functions, or the %%ipytest line deselects them."
        if exit_code in (3, 4) or not self.failed:
            return "pytest could not run the tests: the message above says why."
        count = len(self.failed)
        tests = f"{count} test failed" if count == 1 else f"{count} tests failed"
        if self.fails_on_purpose:
            return f"{tests} — expected here: this cell fails on purpose, and the text below explains why."
        return f"{tests} — your answer is not right yet: the report above shows where."


def _loop_running_in(thread_id: int | None) -> asyncio.AbstractEventLoop | None:
    """The event loop running in that thread, found on its stack (asyncio has no API for it)."""
    frame = sys._current_frames().get(thread_id) if thread_id is not None else None
    while frame is not None:
        if frame.f_code.co_name in ("_run_once", "run_forever"):
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, asyncio.AbstractEventLoop):
                return candidate
        frame = frame.f_back
    return None


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


def _raise_in_thread(thread_id: int | None, exception: type[BaseException]) -> None:
    if thread_id is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exception))
