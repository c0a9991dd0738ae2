"""What a checker cell uses: ``%%ipytest --exercise N.M`` and a few helpers for checking properties.

A checker is a specification. Each of its test functions checks ONE property an answer must have; its
name is the check's stable id (what the course counts failures by) and its docstring states the
property in one sentence. This pytest plugin (``-p coursedb.checks``, added by ``setup()``) does three
things for a cell run with ``--exercise N.M``:

- every failure of the cell ends in one sentence that names the exercise and the property that failed
  (the test's docstring), whatever raised: an ``assert``, ``pytest.fail`` or an error in the answer; a
  failure in a fixture's clean-up after the body (a commit db_conn undid) says so instead;
- frames inside installed libraries and the standard library (asyncpg, asyncio, httpx, Starlette …) are
  left out of the report, so the learner's own line is the one that shows;
- every async check whose body passed is also checked for what the call left behind, compared with the
  state before the body: on the caller's connection (``db_conn``) its settings (a ``SET``, and a ``SET LOCAL``,
  which outlives even a released savepoint), the channels it LISTENs on,
  asyncpg's listeners, log listeners, termination listeners and query loggers, and transactions opened on it
  and never ended; the query loggers and termination listeners on ``db_pool``'s connections (a pool's reset
  on release keeps them for the next borrower); and the tasks started and still running a second after the
  body. A leftover fails the check with one sentence ("Exercise 0.1, not yet: the call must leave the
  caller's connection as it found it: enable_seqscan is 'off' after the call (was 'on'): ...") and is
  removed (tasks cancelled, callbacks taken off), so the next check starts clean. A check that itself
  changes something it then expects the answer to keep says so: ``@pytest.mark.changes("statement_timeout")``
  (setting names, or ``"settings"``, ``"listeners"``, ``"loggers"``, ``"tasks"``, ``"transactions"``).
  Its cost: two queries on db_conn per check (``benchmarks/after_call.py``).

Helpers for the properties themselves:

- ``examples()``: Hypothesis settings for a checker: derandomized (the same examples on every run, so a
  verdict never changes), no example database, no deadline (a query on a busy machine is not a bug),
  and fixtures shared by the examples allowed, because each example runs in a savepoint (``savepoint``);
- ``savepoint(conn)``: ``async with savepoint(conn):`` runs a block and always rolls it back;
- ``waits_for(conn, other)``: true once ``conn``'s server process waits for a lock ``other`` holds
  (the server's lock graph, ``pg_blocking_pids``: no sleep decides an interleaving);
- ``blocked(conn, probes, wait)``: the probes (SQL, or calls) ``conn`` cannot run at once because another
  transaction holds a lock they need, each under a short ``lock_timeout`` and rolled back: whether an answer
  locks more than it must;
- ``cancel_while_waiting(call, conn, holder)``: what a caller's own time limit does to a call stuck behind
  another transaction: start it, cancel it once ``conn`` waits for a lock ``holder`` holds, return its task
  (``cancel_if_waiting``: and whether it waited);
- ``cancelled_cleanly(call, conn, holder, unchanged=None)``: what a cancelled call must leave its caller,
  checked while ``holder`` still holds the lock ``call`` waits for: cancelled while it waits, the call ends
  cancelled (CancelledError neither swallowed nor turned into a return value or another error); ``conn``
  answers its next query at once (no "another operation is in progress", as after ``asyncio.shield``), in
  no transaction the call started, not aborted, with no query still running for it on the server
  (``pg_stat_activity``); and ``unchanged()`` (say, the rows the call writes) returns what it did before the
  call. Fails the check with one sentence otherwise;
- ``result_of(task, what)``: a started call's result, or one sentence if it raised or never ended;
- ``until_idle(conn)``: the clean-up after a cancelled call: wait until ``conn`` answers again, else terminate it;
- ``server_error_reaches_caller(call, conn, holder, table)``: an error the server raises for a call reaches its
  caller: ``holder`` locks ``table`` and ``conn`` gets a short ``lock_timeout``, so the server refuses the call's
  query; the call must raise that error (or one raised from it), never turn it into a return value (None for
  "not found", say). Fails the check with one sentence otherwise;
- ``answer_to(call, what, why, made_up)``: what the learner's function returns for one input; on an input the
  checker made up, an exception it raises fails the check in one sentence instead of a traceback;
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
import functools
import inspect
import sysconfig
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from asyncpg.transaction import Transaction, TransactionState

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "changes(*what): this check itself changes these on db_conn, so the state after the call ignores them: "
        "setting names (statement_timeout) or 'settings', 'listeners', 'loggers', 'tasks', 'transactions'",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """In ``--exercise`` mode, an async check runs inside ``_left_as_found`` (the state after the call)."""
    target = _async_target(item) if item.config.getoption("exercise") is not None else None
    if target is None:
        return (yield)
    owner, name = target
    body = getattr(owner, name)
    setattr(owner, name, _left_as_found(item, body))
    try:
        result = yield  # raises if the check failed: its own property comes first
    finally:
        setattr(owner, name, body)
    if left := getattr(item, "_course_left", None):
        raise LeftBehind(left)
    return result


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, Any]:
    report = yield
    exercise = item.config.getoption("exercise")
    if exercise is not None and report.failed and not getattr(item, "_course_property_said", False):
        item._course_property_said = True  # type: ignore[attr-defined]  (once: a teardown may fail too)
        left = call.excinfo.value if call.excinfo is not None else None
        if isinstance(left, LeftBehind):  # the sentence is the whole report: no traceback through this module
            report.longrepr = f"Exercise {exercise}, not yet: {left}"
            return report
        sentence = property_sentence(exercise, item, report.when)
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


def property_sentence(exercise: str, item: pytest.Item, when: str = "call") -> str:
    """The last line of a failed check: which exercise, and the property the check asks for. A failure in the
    clean-up after the check's body (a fixture's teardown: a commit db_conn undid, a pool left busy) is not that
    property's; one in its setup is (a fixture may call the answer)."""
    if when == "teardown":
        return f"Exercise {exercise}, not yet: the clean-up after the check found what the call left behind (above)"
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


# --- the state after the call ---------------------------------------------------------------------

AFTER_GRACE_S = 1.0  # how long tasks started during a check get to end by themselves before they count as left
# The caller's connection as the server sees it, in one query: every setting (as SHOW spells it) and the channels
# it listens on. Not its advisory locks: pg_locks cannot tell a session's lock (a leak) from one that ends with
# the caller's transaction (8.2's right answers claim a job with pg_try_advisory_xact_lock, as FOR UPDATE would).
_SERVER_STATE = """
SELECT array_agg(name ORDER BY name) AS names, array_agg(current_setting(name) ORDER BY name) AS settings,
  (SELECT coalesce(array_agg(c ORDER BY c), '{}') FROM pg_listening_channels() c) AS channels
FROM pg_settings
"""
# asyncpg's callbacks on a connection (private attributes: asyncpg has no public way to list them): what each is
# called, which mark word skips it, the method that removes it. A pool's reset on release clears listeners and log
# listeners, never query loggers and termination listeners: those reach the pool's next borrower.
_KEPT_BY_POOLS = {
    "_query_loggers": ("query logger", "loggers", "remove_query_logger"),
    "_termination_listeners": ("termination listener", "listeners", "remove_termination_listener"),
}
_CALLBACKS = {
    **_KEPT_BY_POOLS,
    "_log_listeners": ("log listener", "listeners", "remove_log_listener"),
    "_listeners": ("listener", "listeners", "remove_listener"),
}


class LeftBehind(AssertionError):
    """A check's body passed, but the call left something on the caller's connection (or running)."""


def _async_target(item: pytest.Item) -> tuple[Any, str] | None:
    """Where pytest-asyncio takes the coroutine function it runs: the test, or a Hypothesis test's inner test."""
    function = getattr(item, "obj", None)
    inner = getattr(getattr(function, "hypothesis", None), "inner_test", None)
    if inner is not None and inspect.iscoroutinefunction(inner):
        return function.hypothesis, "inner_test"  # type: ignore[union-attr]
    if inspect.iscoroutinefunction(function):
        return item, "obj"
    return None


def _raw(conn: Any) -> Any:
    """The asyncpg connection itself, also when the check holds a pool's proxy of it."""
    return getattr(conn, "_con", None) or conn


def _pooled(pool: Any) -> list[Any]:
    return [holder._con for holder in getattr(pool, "_holders", []) if getattr(holder, "_con", None) is not None]


def _callbacks(conn: Any, kinds: dict[str, tuple[str, str, str]]) -> dict[str, set[tuple[str | None, Any]]]:
    """asyncpg's callbacks on ``conn``, by attribute: (channel or None, callback)."""
    found: dict[str, set[tuple[str | None, Any]]] = {}
    for attribute in kinds:
        value = getattr(conn, attribute, None) or ()
        if isinstance(value, dict):  # listeners: channel -> callbacks
            found[attribute] = {(channel, callback) for channel, callbacks in value.items() for callback in callbacks}
        else:
            found[attribute] = {(None, callback) for callback in value}
    return found


async def _callbacks_left(conn: Any, before: dict[str, set[Any]], kinds: dict[str, tuple[str, str, str]],
                          ignored: set[str], whose: str) -> list[str]:  # fmt: skip
    """A clause per kind of callback added to ``conn`` since ``before``; each is removed, so the next check starts
    clean (and the pool does not warn about a listener at release)."""
    left = []
    after = _callbacks(conn, kinds)
    for attribute, (kind, word, remove) in kinds.items():
        added = sorted(after[attribute] - before.get(attribute, set()), key=repr)
        if not added or word in ignored:
            continue
        for channel, callback in added:
            removed = getattr(conn, remove)(*((channel,) if channel is not None else ()), callback.cb)
            if inspect.isawaitable(removed):
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):  # busy or aborted: rollback
                    await removed
        names = ", ".join(sorted({getattr(c.cb, "__qualname__", None) or repr(c.cb) for _, c in added}))
        channels = sorted({channel for channel, _ in added if channel is not None})
        on = f" on channel{'s' if len(channels) > 1 else ''} {', '.join(map(repr, channels))}" if channels else ""
        many = f"{len(added)} {kind}s" if len(added) > 1 else f"a {kind}"
        left.append(f"{many}{on} added to {whose} ({names}) {'are' if len(added) > 1 else 'is'} still there: "
                    f"conn.{remove}() what you add before returning")  # fmt: skip
    return left


async def _server(conn: Any) -> dict[str, Any] | None:
    """The server's side of ``conn``, or None when it cannot say: an aborted transaction (whose rollback undoes
    every SET in it) or a closed connection (the fixture says so)."""
    try:
        row = await conn.fetchrow(_SERVER_STATE)
    except (asyncpg.InFailedSQLTransactionError, asyncpg.ConnectionDoesNotExistError):
        return None
    except asyncpg.InterfaceError as exc:
        return {"busy": True} if "another operation is in progress" in str(exc) else None
    settings = dict(zip(row["names"], row["settings"], strict=True))
    return {"settings": settings, "channels": row["channels"]}


def _server_left(before: dict[str, Any], after: dict[str, Any], ignored: set[str]) -> list[str]:
    if after.get("busy"):
        return ["a query the call started is still running on it: await every query before returning"]
    left = []
    changed = [
        f"{name} is {after['settings'].get(name)!r} after the call (was {before['settings'].get(name)!r})"
        for name in sorted(set(before["settings"]) | set(after["settings"]))
        if name.lower() not in ignored and before["settings"].get(name) != after["settings"].get(name)
    ]
    if changed and "settings" not in ignored:
        left.append("; ".join(changed) + ": a SET, and a SET LOCAL too (it lasts until the caller's transaction "
                    "ends), outlives the call, so change no setting of a connection you were given")  # fmt: skip
    if "listeners" not in ignored:
        for channel in sorted(set(after["channels"]) - set(before["channels"])):
            left.append(f"it still listens on channel {channel!r}: UNLISTEN what the call listens to before returning")
    return left


async def _tasks_left(before: set[asyncio.Task]) -> list[str]:
    """Tasks started since ``before`` and still running after a grace period (then cancelled), as a clause."""
    current = asyncio.current_task()
    running = {task for task in asyncio.all_tasks() if task not in before and task is not current and not task.done()}
    if running:
        await asyncio.wait(running, timeout=AFTER_GRACE_S)
    left = [task for task in running if not task.done()]
    if not left:
        return []
    for task in left:
        task.cancel()
    await asyncio.wait(left, timeout=AFTER_GRACE_S)
    names = ", ".join(sorted({getattr(task.get_coro(), "__qualname__", None) or task.get_name() for task in left}))
    many = f"{len(left)} tasks" if len(left) > 1 else "a task"
    return [f"{many} it started ({names}) still ran {AFTER_GRACE_S:g} s after it returned: await or cancel every "
            "task you start before returning"]  # fmt: skip


def _left_as_found(item: pytest.Item, body: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``body`` (an async check) with the state after it compared with the state before it: the caller's connection
    (``db_conn``: settings, LISTEN channels, asyncpg's listeners and loggers, transactions opened
    on it and never ended), the loggers on every connection of ``db_pool`` (a pool's reset keeps them for the next
    borrower) and the tasks started and still running. What it finds is noted on ``item`` (the first time: a
    Hypothesis test runs its body once per example) for ``pytest_runtest_call`` to fail the check with, once
    the body has passed; tasks and callbacks left behind are removed, so the next check starts clean."""
    ignored = {str(what).lower() for mark in item.iter_markers("changes") for what in mark.args}

    @functools.wraps(body)
    async def checked(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # pytest: a failure in the body shows the check's lines, not this wrapper
        if getattr(item, "_course_left", None):
            return await body(*args, **kwargs)
        funcargs = getattr(item, "funcargs", {})
        conn = _raw(funcargs["db_conn"]) if "db_conn" in funcargs else None
        pool = funcargs.get("db_pool")
        tasks = asyncio.all_tasks()
        server = await _server(conn) if conn is not None else None
        own = _callbacks(conn, _CALLBACKS) if conn is not None else {}
        pooled = {id(c): _callbacks(c, _KEPT_BY_POOLS) for c in _pooled(pool)}
        opened: list[Transaction] = []
        start = Transaction.start

        async def noted(transaction: Transaction) -> None:  # the transactions opened on the caller's connection
            if conn is not None and transaction._connection is conn:
                opened.append(transaction)
            await start(transaction)

        Transaction.start = noted  # type: ignore[method-assign]
        try:
            result = await body(*args, **kwargs)
        finally:
            Transaction.start = start  # type: ignore[method-assign]
        left = [] if "tasks" in ignored else await _tasks_left(tasks)
        if conn is not None and not conn.is_closed():
            if "transactions" not in ignored and any(t._state is TransactionState.STARTED for t in opened):
                left.append("a transaction the call started on it (a savepoint) is still open: end every "
                            "transaction you start (async with conn.transaction():)")  # fmt: skip
            left += await _callbacks_left(conn, own, _CALLBACKS, ignored, "it")
            after = await _server(conn)
            if server is not None and after is not None:
                left += _server_left(server, after, ignored)
        for other in _pooled(pool):
            if other is not conn:
                left += await _callbacks_left(other, pooled.get(id(other), {}), _KEPT_BY_POOLS, ignored,
                                              "a pooled connection")  # fmt: skip
        if left:
            only_tasks = all(clause.startswith(("a task", "tasks")) for clause in left)
            lead = (
                "leave nothing running after it returns"
                if only_tasks
                else "leave the caller's connection as it found it"
            )
            item._course_left = f"the call must {lead}: {'; '.join(left)}"  # type: ignore[attr-defined]
        return result

    return checked


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


# A probe of ``blocked``: SQL, SQL and its arguments, or a coroutine function called with the probing connection.
Probe = str | tuple[Any, ...] | Callable[[Any], Awaitable[Any]]


async def blocked(conn: Any, probes: Mapping[str, Probe], wait: float = 0.1) -> list[str]:
    """The names of the ``probes`` that ``conn`` cannot run at once because another transaction holds a lock they
    need ("does the answer lock more than it must?"), in their order. Each probe runs on its own, in a transaction
    (a savepoint if ``conn`` is in one) that is always rolled back, under ``SET LOCAL lock_timeout`` of ``wait``
    seconds: a probe that would wait for ever ends with LockNotAvailableError instead, and nothing it did stays.
    The timeout counts only time spent waiting for a lock, so a slow machine does not make a free probe count."""
    if wait <= 0:  # lock_timeout 0 means no limit: a blocked probe would wait for ever
        raise ValueError(f"blocked() needs a wait above 0 s, not {wait!r}")
    names = []
    for name, probe in probes.items():
        try:
            async with savepoint(conn):
                await conn.execute(f"SET LOCAL lock_timeout = {max(1, round(wait * 1000))}")  # milliseconds
                if callable(probe):
                    await probe(conn)
                else:
                    await conn.execute(*((probe,) if isinstance(probe, str) else probe))
        except asyncpg.LockNotAvailableError:
            names.append(name)
    return names


async def cancel_while_waiting(call: Awaitable[Any], conn: Any, holder: Any, seconds: float = 5) -> asyncio.Future:
    """Start ``call`` (which runs on ``conn``); once ``conn`` waits for a lock ``holder`` holds, cancel it. Returns
    its task once it has ended, or once ``seconds`` have passed (check ``done()``). A call that never waits is
    left to end by itself."""
    task, _ = await cancel_if_waiting(call, conn, holder, seconds)
    return task


async def cancel_if_waiting(
    call: Awaitable[Any], conn: Any, holder: Any, seconds: float = 5
) -> tuple[asyncio.Future, bool]:
    """``cancel_while_waiting``, and whether the call waited (for a check that the call must not wait: its task's
    ``cancelled()`` cannot say, since a call may swallow the cancellation)."""
    task = asyncio.ensure_future(call)
    waited = await waits_for(conn, holder, task, seconds)
    if waited:
        task.cancel()
    await asyncio.wait({task}, timeout=seconds)
    return task, waited


async def cancelled_cleanly(
    call: Awaitable[Any],
    conn: Any,
    holder: Any,
    unchanged: Callable[[], Awaitable[Any]] | None = None,
    seconds: float = 5,
) -> None:
    """Cancel ``call`` (which runs on ``conn``) while it waits for a lock ``holder`` holds, as a caller's own time
    limit would, and check, while ``holder`` still holds it, what a caller needs then: the call ended cancelled
    (CancelledError not swallowed, not turned into a return value or another error); ``conn`` answers its next
    query at once (no "another operation is in progress"), is in a transaction only if it was before, and the
    server runs no query for it any more (``pg_stat_activity``, asked through ``holder``); what ``unchanged()``
    returns (the rows the call writes, read on ``conn``) is what it returned before the call. Fails the check with
    one sentence (``pytest.fail``) otherwise. Call it inside ``holder``'s transaction, after its lock is taken."""
    __tracebackhide__ = True  # pytest: the checker's line, not this helper's
    was_in_transaction = conn.is_in_transaction()
    before = await unchanged() if unchanged is not None else None
    task = asyncio.ensure_future(call)
    if not await waits_for(conn, holder, task, seconds):
        if not task.done():
            task.cancel()  # the cell's next check must not inherit it
        await asyncio.wait({task}, timeout=seconds)
        pytest.fail(f"the call never waited for the lock another transaction holds (it {_ended(task)}): it "
                    "must wait for that lock, and end cancelled when its caller gives up", pytrace=False)  # fmt: skip
    task.cancel()
    await asyncio.wait({task}, timeout=seconds)
    if not task.done():
        task.cancel()
        pytest.fail(f"the call was still running {seconds:g} s after it was cancelled: let CancelledError end it",
                    pytrace=False)  # fmt: skip
    if not task.cancelled():
        pytest.fail(f"cancelled while it waited for a lock, the call {_ended(task)}: a cancelled call must end "
                    "cancelled (let CancelledError through: never catch it, or raise it again after cleaning up)",
                    pytrace=False)  # fmt: skip
    if conn.is_in_transaction() and not was_in_transaction:
        pytest.fail("the cancelled call left the caller's connection inside a transaction it started: end it "
                    "whatever happens (async with conn.transaction():)", pytrace=False)  # fmt: skip
    try:
        await asyncio.wait_for(conn.fetchval("SELECT 1"), seconds)
    except asyncpg.InFailedSQLTransactionError:
        pytest.fail("the cancelled call left the caller's transaction aborted: run the call's statements in a "
                    "transaction of its own (async with conn.transaction():), which a cancellation rolls back",
                    pytrace=False)  # fmt: skip
    except asyncpg.InterfaceError as exc:
        running = await _running(holder, conn)
        pytest.fail(f"after the cancelled call the caller's connection cannot be used ({exc}){running}: cancel "
                    "the query with the call (no asyncio.shield, no task of its own on the caller's connection)",
                    pytrace=False)  # fmt: skip
    except asyncio.TimeoutError:
        pytest.fail(f"after the cancelled call the caller's connection did not answer within {seconds:g} s",
                    pytrace=False)  # fmt: skip
    running = await _running(holder, conn)
    if running:
        pytest.fail(f"after the cancelled call the server still runs a query for the caller's connection{running}: "
                    "cancel the query with the call", pytrace=False)  # fmt: skip
    if unchanged is not None and (after := await unchanged()) != before:
        pytest.fail(f"the cancelled call's work was not undone: {before!r} before the call, {after!r} after it",
                    pytrace=False)  # fmt: skip


async def result_of(task: asyncio.Future, what: str, seconds: float = 5) -> Any:
    """The result of a call the checker started (``what`` names it), once whatever held it up is done. Fails the check
    with one sentence, not a traceback, if it raised, was cancelled or has not ended within ``seconds`` (then it is
    cancelled: the cell's next check must not inherit it)."""
    __tracebackhide__ = True  # pytest: the checker's line, not this helper's
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        pytest.fail(f"{what} had not ended {seconds:g} s after the holder was done", pytrace=False)
    if task.cancelled() or task.exception() is not None:
        pytest.fail(f"{what} raised {task.exception() if not task.cancelled() else 'CancelledError'!r}", pytrace=False)
    return task.result()


async def until_idle(conn: Any, seconds: float = 5) -> None:
    """Wait until ``conn`` answers a query again (a statement a cancelled call left running has ended), else terminate
    it (a pool replaces it): the clean-up after a check that cancels a call, so the next check gets a usable one."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await conn.fetchval("SELECT 1")
            return
        except asyncpg.PostgresError:  # the server answered (a transaction left aborted): nothing runs
            return
        except asyncpg.InterfaceError:  # "another operation is in progress": the statement still runs
            await asyncio.sleep(0.01)
    conn.terminate()


def _ended(task: asyncio.Future) -> str:
    if not task.done():
        return "was still running"
    if task.cancelled():
        return "ended cancelled"
    error = task.exception()
    return f"returned {task.result()!r}" if error is None else f"raised {type(error).__name__}: {error}"


async def _running(observer: Any, conn: Any) -> str:
    """What the server runs for ``conn``'s process now, as a clause for a sentence ("" if nothing)."""
    row = await observer.fetchrow(
        "SELECT state, query FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", conn.get_server_pid()
    )
    return "" if row is None else f" (the server still runs {' '.join(row['query'].split())[:80]!r} for it)"


async def server_error_reaches_caller(
    call: Awaitable[Any], conn: Any, holder: Any, table: str, wait: float = 0.005, seconds: float = 5
) -> BaseException:
    """Check that an error the server raises for ``call`` (which runs on ``conn``) reaches its caller: while
    ``holder``'s transaction locks ``table`` (ACCESS EXCLUSIVE) and ``conn`` has a ``lock_timeout`` of ``wait`` s,
    no query on ``table`` can run, and the call must raise the server's error (or an error raised while handling it),
    never return a value. Returns the error; fails the check with one sentence (``pytest.fail``) otherwise. The lock
    ends with ``holder``'s transaction, and ``conn``'s setting with a savepoint rolled back after the call. ``conn``
    must hold no lock on ``table``: call it before the check writes to ``table``."""
    __tracebackhide__ = True  # pytest: the checker's line, not this helper's
    async with holder.transaction():
        await holder.execute("SET LOCAL lock_timeout = '5s'")  # whoever else holds the table: an error, no hang
        try:
            if await holder.fetchval(_LOCKS_TABLE, conn.get_server_pid(), table):
                raise asyncpg.LockNotAvailableError("the caller's own transaction holds a lock on it")
            await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        except asyncpg.LockNotAvailableError as exc:
            if inspect.iscoroutine(call):
                call.close()  # never started: no "never awaited" warning
            raise RuntimeError(f"server_error_reaches_caller could not lock {table} ({exc}): call it before the "
                               f"check touches {table} in the caller's transaction") from exc  # fmt: skip
        async with savepoint(conn):
            await conn.execute(f"SET LOCAL lock_timeout = {max(1, round(wait * 1000))}")  # milliseconds
            task = asyncio.ensure_future(call)
            await asyncio.wait({task}, timeout=seconds)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=seconds)
    situation = f"with {table} locked by another transaction and lock_timeout {wait:g} s on the caller's connection"
    if not task.done() or task.cancelled():
        pytest.fail(f"{situation}, the call was still running after {seconds:g} s: let the server's error end it",
                    pytrace=False)  # fmt: skip
    error = task.exception()
    if error is None:
        pytest.fail(f"{situation}, no query on {table} can run, yet the call returned {task.result()!r}: let the "
                    "server's error reach the caller (catch only the errors you expect)", pytrace=False)  # fmt: skip
    if not _raised_from(error, asyncpg.PostgresError):
        pytest.fail(f"{situation}, the call raised {type(error).__name__}: {error}, not the server's error: let that "
                    "error reach the caller (or raise yours from it)", pytrace=False)  # fmt: skip
    return error


_LOCKS_TABLE = "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND relation = $2::text::regclass AND granted)"


def _raised_from(error: BaseException | None, kind: type[BaseException]) -> bool:
    """Is ``error``, or an error it was raised from or while handling, a ``kind``?"""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def answer_to(call: Callable[[], T], what: str, why: str, made_up: bool = False) -> T:
    """``call()``'s result. If it raises on an input the checker made up, the check fails in one sentence
    (``what`` raised …: ``why``), since ``why`` shows that input; on a real input the exception goes on, so
    its traceback points at the line of the learner's code where it happened."""
    __tracebackhide__ = True  # pytest leaves this frame out: the learner's own line is the one to read
    try:
        return call()
    except Exception as exc:
        if not made_up:
            raise
        pytest.fail(f"{what} raised {exc!r}: {why}", pytrace=False)


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
