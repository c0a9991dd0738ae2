"""The course's pytest plugin for ``%%ipytest`` cells (``-p coursedb.kernel``, added by ``setup()``).

Inside a kernel pytest runs in a thread of its own (the kernel's event loop already runs in
the main thread). pytest-timeout cannot stop a thread: its thread method dumps every stack
and calls ``os._exit(1)``, which kills the kernel. This plugin takes over pytest-timeout's
timer there (through its ``pytest_timeout_set_timer`` hook, so ``--timeout N`` and
``@pytest.mark.timeout`` still set the limit) and stops an overdue test gently:

1. cancel the asyncio tasks of the event loop the test runs on (an ``await`` that never ends);
2. if that did not end it within GRACE seconds, raise ``TestStopped`` inside the pytest thread
   (a busy loop in plain Python);
3. if even that fails (a thread blocked outside Python, e.g. ``time.sleep``), give up and say
   that the kernel must be restarted.

The stopped test fails with one sentence; the kernel stays usable. Outside kernels (the
reference suite from the command line) this plugin is not loaded and pytest-timeout keeps
its own limit.

PYTEST_DONT_REWRITE: the kernel imports this module before pytest does; no assert lives here.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
import threading
from dataclasses import dataclass, field

import pytest

GRACE = 3.0  # seconds a stopped test gets to wind down before the next, harder step


class TestStopped(BaseException):
    """Raised inside a test that ran too long. BaseException: ``except Exception`` must not swallow it."""

    __test__ = False  # not a test class, whatever pytest's name rules say


@dataclass
class Run:
    """What one ``%%ipytest`` run did, for the line under the report."""

    thread_id: int | None = None
    session: pytest.Session | None = None
    item: pytest.Item | None = None
    item_done: threading.Event = field(default_factory=threading.Event)
    timer: threading.Timer | None = None
    failed: list[str] = field(default_factory=list)  # node ids, in order, once each
    stopped: dict[str, str] = field(default_factory=dict)  # node id -> the sentence shown for it
    stuck: str | None = None  # set when a test could not be stopped at all
    fails_on_purpose: bool = False


current = Run()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fails-on-purpose",
        action="store_true",
        help="this cell shows a failure the notebook explains (the line under the report says so)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Reset in place: the kernel's main thread may already hold this object (to interrupt it).
    current.__init__(thread_id=threading.get_ident(), fails_on_purpose=config.getoption("fails_on_purpose"))


def pytest_sessionstart(session: pytest.Session) -> None:
    current.session = session


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item):
    run = current
    run.item, run.item_done = item, threading.Event()
    try:
        yield
    finally:
        run.item_done.set()
        if run.timer is not None:
            run.timer.cancel()
            run.timer.join()
            run.timer = None
        run.item = None


def pytest_timeout_set_timer(item: pytest.Item, settings) -> bool:
    """Replace pytest-timeout's timer (which would kill the kernel) with a gentle one."""
    run = current
    seconds = settings.timeout
    what = f"this test ran longer than {seconds:g} s"
    run.timer = threading.Timer(seconds, stop_test, (run, item, run.item_done, what))
    run.timer.daemon = True
    run.timer.start()
    return True


def pytest_timeout_cancel_timer(item: pytest.Item) -> bool:
    # pytest-timeout also cancels after every failed phase; our timer keeps running until the
    # item's teardown ends (a hang there, e.g. closing a pool, must be stopped too).
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    sentence = current.stopped.get(item.nodeid)
    if sentence and report.failed and not getattr(item, "_course_stop_reported", False):
        report.longrepr = sentence  # instead of a CancelledError traceback through asyncio
        item._course_stop_reported = True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed and report.nodeid not in current.failed:
        current.failed.append(report.nodeid)


def stop_test(run: Run, item: pytest.Item, done: threading.Event, what: str) -> None:
    """Stop ``item``, which runs in pytest's thread; called from another thread."""
    if done.is_set():
        return
    run.stopped[item.nodeid] = f"{what} and was stopped"
    loop = _loop_running_in(run.thread_id)
    if loop is not None:
        loop.call_soon_threadsafe(_cancel_all_tasks, loop)
        if done.wait(GRACE):
            return
    _raise_in_thread(run.thread_id, TestStopped)
    if loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(lambda: None)  # wake its selector so the exception is raised
    if not done.wait(GRACE):
        run.stuck = (
            f"{what} and could not be stopped (it waits outside Python, e.g. in time.sleep): "
            "restart the kernel (Kernel → Restart Kernel), then run the setup cell again."
        )


def interrupt(run: Run) -> None:
    """Kernel → Interrupt while tests run: stop the running test and skip the rest of the cell."""
    if run.session is not None:
        run.session.shouldstop = "Kernel → Interrupt"
    item = run.item
    if item is not None:
        stop_test(run, item, run.item_done, "this test was interrupted (Kernel → Interrupt)")


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


def verdict(run: Run, exit_code: int | None, interrupted: bool) -> str | None:
    """The one line under a red cell's pytest report, or None if the cell is green."""
    if run.stuck:
        return run.stuck
    if interrupted:
        return "The tests were interrupted (Kernel → Interrupt); the kernel is ready for the next cell."
    if exit_code == 0:
        return None
    if exit_code == 5:
        return "No tests ran: this cell defines no test_ functions, or the %%ipytest line deselects them."
    if exit_code in (3, 4) or not run.failed:
        return "pytest could not run the tests: the message above says why."
    count = len(run.failed)
    tests = f"{count} test failed" if count == 1 else f"{count} tests failed"
    if run.fails_on_purpose:
        return f"{tests} — expected here: this cell fails on purpose, and the text below explains why."
    return f"{tests} — your answer is not right yet: the report above shows where."
