"""What a checker cell uses: ``%%ipytest --exercise N.M`` and a few helpers for checking properties.

A checker is a specification. Each of its test functions checks ONE property an answer must have; its
name is the check's stable id (what the course counts failures by) and its docstring states the
property in one sentence. This pytest plugin (``-p coursedb.checks``, added by ``setup()``) does two
things for a cell run with ``--exercise N.M``:

- every failure of the cell ends in one sentence that names the exercise and the property that failed
  (the test's docstring), whatever raised: an ``assert``, ``pytest.fail`` or an error in the answer;
- frames inside installed libraries and the standard library (asyncpg, asyncio, httpx, Starlette …) are
  left out of the report, so the learner's own line is the one that shows.

Helpers for the properties themselves:

- ``examples()``: Hypothesis settings for a checker: derandomized (the same examples on every run, so a
  verdict never changes), no example database, no deadline (a query on a busy machine is not a bug),
  and fixtures shared by the examples allowed, because each example runs in a savepoint (``savepoint``);
- ``savepoint(conn)``: ``async with savepoint(conn):`` runs a block and always rolls it back;
- ``waits_for(conn, other)``: true once ``conn``'s server process waits for a lock ``other`` holds
  (the server's lock graph, ``pg_blocking_pids``: no sleep decides an interleaving);
- ``cancel_while_waiting(call, conn, holder)``: what a caller's own time limit does to a call stuck behind
  another transaction: start it, cancel it once ``conn`` waits for a lock ``holder`` holds, return its task;
- ``timed(coroutine)``: the result and the seconds it took, measured around the call;
- ``outcome(test, *args)``: how a learner's own test ends against one app, for "write a test" exercises
  (an ``Ending``): passed; failed, whichever way a test can fail (``assert``, ``pytest.fail``,
  ``pytest.raises`` that saw nothing, an exception the app raised); or neither: skipped or xfailed
  (``pytest.skip``/``pytest.xfail`` called, or a skip/xfail mark), which a real pytest run reports
  without failing, so a broken app that makes the test skip ships with a green run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import sysconfig
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

# Where installed code lives: frames from here are a library's internals, not the learner's code.
LIBRARY_PATHS = tuple(
    {Path(p).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib") if (p := sysconfig.get_path(key))}
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--exercise",
        default=None,
        metavar="N.M",
        help="this cell checks Exercise N.M: each failure ends with the property it checks",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("exercise") is None:
        return
    for item in items:
        keep = getattr(item, "_traceback_filter", None)
        if keep is not None:
            item._traceback_filter = _without_library_frames(keep)  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, Any]:
    report = yield
    exercise = item.config.getoption("exercise")
    if exercise is not None and report.failed and not getattr(item, "_course_property_said", False):
        item._course_property_said = True  # type: ignore[attr-defined]  (once: a teardown may fail too)
        sentence = property_sentence(exercise, item)
        if isinstance(report.longrepr, str):
            report.longrepr = f"{report.longrepr.rstrip()}\n{sentence}"
        elif hasattr(report.longrepr, "toterminal"):
            report.longrepr = _Ending(report.longrepr, sentence)
    return report


class _Ending:
    """A failure's report as pytest shows it, then one more line (the summary line stays pytest's own)."""

    def __init__(self, report: Any, line: str) -> None:
        self.report, self.line = report, line

    @property
    def reprcrash(self) -> Any:
        return getattr(self.report, "reprcrash", None)

    def toterminal(self, writer: Any) -> None:
        self.report.toterminal(writer)
        writer.line(self.line)

    def __str__(self) -> str:
        return f"{self.report}\n{self.line}"


def property_sentence(exercise: str, item: pytest.Item) -> str:
    """The last line of a failed check: which exercise, and the property the check asks for."""
    function = getattr(item, "function", None)
    doc = inspect.getdoc(function) if function is not None else None
    what = " ".join(doc.split("\n\n")[0].split()) if doc else item.name.removeprefix("test_").replace("_", " ")
    return f"Exercise {exercise}, not yet: {what}"


def _without_library_frames(keep: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def trimmed(excinfo: Any) -> Any:
        traceback = keep(excinfo)
        own = traceback.filter(lambda entry: not _is_library(entry.path))
        return own if len(own) else traceback

    return trimmed


def _is_library(path: Any) -> bool:
    try:
        resolved = Path(path).resolve()
    except (TypeError, OSError):
        return False
    return any(resolved.is_relative_to(root) for root in LIBRARY_PATHS)


# --- helpers for checker cells --------------------------------------------------------------------


def examples(max_examples: int = 12) -> Any:
    """Hypothesis settings for a checker (see the module's docstring); each example in a ``savepoint``."""
    from hypothesis import HealthCheck, settings  # here, not at the top: most checkers do without it

    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@contextlib.asynccontextmanager
async def savepoint(conn: Any) -> AsyncIterator[None]:
    """Run the block inside a savepoint of ``conn``'s transaction, and roll it back whatever happens."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        yield
    finally:
        await transaction.rollback()


async def waits_for(conn: Any, other: Any, task: asyncio.Future | None = None, seconds: float = 10) -> bool:
    """Poll the server's lock graph until ``conn`` waits for a lock ``other`` holds (True), or until
    ``task`` ends or ``seconds`` pass (False). ``other`` asks, since ``conn`` is busy waiting."""
    pid, holder = conn.get_server_pid(), other.get_server_pid()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if holder in await other.fetchval("SELECT pg_blocking_pids($1)", pid):
            return True
        if task is not None and task.done():
            return False
        await asyncio.sleep(0.01)
    return False


async def cancel_while_waiting(call: Awaitable[Any], conn: Any, holder: Any, seconds: float = 5) -> asyncio.Future:
    """Start ``call`` (which runs on ``conn``); once ``conn`` waits for a lock ``holder`` holds, cancel it. Returns
    its task once it has ended, or once ``seconds`` have passed (check ``done()``). A call that never waits is
    left to end by itself."""
    task = asyncio.ensure_future(call)
    if await waits_for(conn, holder, task, seconds):
        task.cancel()
    await asyncio.wait({task}, timeout=seconds)
    return task


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    """``awaitable``'s result and the seconds it took, measured around the call."""
    start = time.perf_counter()
    result = await awaitable
    return result, time.perf_counter() - start


@dataclasses.dataclass(frozen=True)
class Ending:
    """How a learner's test ended against one app: ``how`` is "passed", "failed", "skipped", "xfailed" or
    "xpassed"; ``error`` is what made it fail, skip or xfail. ``str()`` says it for a checker's message."""

    how: str
    error: BaseException | None = None

    @property
    def passed(self) -> bool:
        return self.how == "passed"

    @property
    def failed(self) -> bool:
        return self.how == "failed"

    def __str__(self) -> str:
        if self.how in ("passed", "failed"):
            return self.how if self.error is None else f"{self.how}: {self.error!r}"
        reason = str(self.error) if self.error is not None else ""
        said = f"{self.how} ({reason!r})" if reason else self.how
        return (
            f"{said}: neither a pass nor a failure (a real pytest run reports it as {self.how} and exits 0, green "
            "even for a broken app); let the test pass or fail (assert, pytest.fail), never skip or xfail"
        )


def _marked(test: Callable[..., Any], name: str) -> Any:
    """The test's ``name`` mark (skip, skipif, xfail) if it applies: no condition, or a true one."""
    for mark in getattr(test, "pytestmark", []):
        if mark.name == name and all(bool(condition) for condition in mark.args):
            return mark
    return None


async def outcome(test: Callable[..., Awaitable[Any]], *args: Any, seconds: float | None = None) -> Ending:
    """Run a learner's async test function once, as pytest would, and say how it ended (``Ending``). With
    ``seconds``, a test still running after that long is stopped and counts as failed (a hang is no pass)."""
    if _marked(test, "skip") or _marked(test, "skipif"):
        return Ending("skipped", pytest.skip.Exception("marked to skip"))
    xfail = _marked(test, "xfail")
    if xfail is not None and not xfail.kwargs.get("run", True):
        return Ending("xfailed", pytest.xfail.Exception("marked xfail, not run"))
    try:
        await (test(*args) if seconds is None else _bounded(test(*args), seconds))
    except pytest.xfail.Exception as xfailed:  # before Failed: XFailed is one
        return Ending("xfailed", xfailed)
    except pytest.skip.Exception as skipped:  # a BaseException, like the two pytest.fail ones
        return Ending("skipped", skipped)
    except (Exception, pytest.fail.Exception) as failure:
        return Ending("xfailed" if xfail is not None else "failed", failure)
    if xfail is not None:
        return Ending("failed" if xfail.kwargs.get("strict") else "xpassed")
    return Ending("passed")


async def _bounded(awaitable: Awaitable[T], seconds: float) -> T:
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=1)  # let it clean up (a listener removed in its finally)
        raise AssertionError(f"the test had not ended after {seconds:g} s")
    return task.result()
