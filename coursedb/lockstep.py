"""Run code on two connections one statement at a time, so a race happens the same way every run.

Checkers of concurrent exercises use it. The learner's function gets a *gated* connection, on which
every statement first waits for its turn. The driver lets the sessions take turns (A, then B, then
A...) and, after each statement it lets go, asks the server (``pg_blocking_pids``) whether that
statement waits for another session's lock; if it does, the other session goes on. No sleeps and no
luck: a schedule gives the same interleaving on a quiet laptop and on a busy CI runner.

    race = Lockstep(A=first_conn, B=second_conn)
    for first, head_start in race.schedules():
        outcome = await race.run({"A": cancel, "B": cancel}, first=first, head_start=head_start)
        outcome.results     # {"A": True, "B": False}, or the exception a session raised
        outcome.timeline()  # "A: SELECT ...; B: SELECT ...; A: UPDATE ...; B: UPDATE ... (waits for A)"

``head_start`` is how many steps the first session takes before the other starts; after that they
alternate. ``in_transaction(call)`` runs a call in a transaction whose COMMIT is a step of its own,
so the driver decides when its locks are released.

``hold=seconds`` asks whether a session waits for a lock as long as it is held: after its head start the
first session (the holder) goes on only when no other session can, and only once each session that
waits for it has waited that long; the outcome notes who stopped
waiting before (``gave_up``: a timeout of its own ran out) and who waited under a time limit it set
itself (``limits``: ``lock_timeout`` or ``statement_timeout``, asked of its own session before each of
its steps; and the limits the server never sees: asyncpg's ``timeout=`` or ``command_timeout``, an
``asyncio.timeout()`` or ``asyncio.wait_for()`` around the call), which would end the wait of any holder that
holds longer than ``hold``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

# Connection methods that send a statement: each one waits for its turn. (prepare() and cursor()
# pass through: their statements run later, on objects of their own.)
STATEMENTS = frozenset(
    {
        "execute",
        "executemany",
        "fetch",
        "fetchrow",
        "fetchval",
        "fetchmany",
        "copy_from_query",
        "copy_from_table",
        "copy_to_table",
        "copy_records_to_table",
    }
)
POLL_S = 0.005  # how often the driver looks at a statement it let go
LIMITS = ("lock_timeout", "statement_timeout")  # the server's own ends to a wait; SHOW takes no snapshot
BOUND_S = 10.0  # one run; a session still busy after this fails the run instead of hanging it

Call = Callable[["Gated"], Awaitable[Any]]


def client_limits(session: Gated, task: asyncio.Task) -> list[str]:
    """The time limits on ``session``'s waiting statement that the server never sees, so the lock graph cannot:
    asyncpg's ``timeout=`` (or the connection's ``command_timeout``), and an ``asyncio.timeout()`` or
    ``asyncio.wait_for()`` around the call in ``task`` (found among the event loop's timers)."""
    found = []
    config = getattr(getattr(session.conn, "_con", None) or session.conn, "_config", None)
    command_timeout = getattr(config, "command_timeout", None)
    if session.timeout is not None:
        found.append(f"timeout={session.timeout:g} (asyncpg's, a limit on the client)")
    elif command_timeout:
        found.append(f"command_timeout={command_timeout:g} (asyncpg's, a limit on the client)")
    loop = asyncio.get_running_loop()
    waiting_on = getattr(task, "_fut_waiter", None)
    for handle in getattr(loop, "_scheduled", ()):  # private: asyncio has no public list of its timers
        if handle.cancelled():
            continue
        callback, args = handle._callback, handle._args
        owner = getattr(callback, "__self__", None)
        left = f"{max(handle.when() - loop.time(), 0):.1f} s"
        if isinstance(owner, asyncio.Timeout) and getattr(owner, "_task", None) is task:
            found.append(f"asyncio.timeout() ending in {left}")
        elif getattr(callback, "__name__", "") == "_release_waiter" and args and args[0] is waiting_on:
            found.append(f"asyncio.wait_for() ending in {left}")
    return found


class Stuck(AssertionError):
    """A run did not finish within BOUND_S."""


class Gated:
    """An asyncpg connection whose statements each wait for the driver's go-ahead.

    Everything else (``transaction()``, ``get_server_pid()``, ...) is the connection's own. Outside
    a run statements pass straight through, so a checker can set up rows on the same object."""

    def __init__(self, name: str, conn: asyncpg.Connection) -> None:
        self.name, self.conn = name, conn
        self.parked = asyncio.Event()
        self.go = asyncio.Event()
        self.driven = False
        self.next_step = ""
        self.limits: dict[str, str] = {}  # the time limits in force for its next step, when a run asks
        self.timeout: float | None = None  # asyncpg's timeout= of its latest statement (a client-side limit)

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self.conn, attribute)
        if attribute not in STATEMENTS:
            return value

        @functools.wraps(value)
        async def statement(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # pytest: the learner's line, then asyncpg's error, not this wrapper
            self.timeout = kwargs.get("timeout")
            await self.pause(str(args[0]) if args else attribute)
            return await value(*args, **kwargs)

        return statement

    def __repr__(self) -> str:
        return f"<connection {self.name}>"

    async def pause(self, step: str) -> None:
        """Wait here until the driver says go; ``step`` is what the timeline calls this moment."""
        if not self.driven:
            return
        self.next_step = " ".join(step.split())
        self.go.clear()
        self.parked.set()
        await self.go.wait()


def in_transaction(call: Call) -> Call:
    """``call`` inside a transaction of the caller's, committed at a step of its own."""

    async def wrapped(conn: Gated) -> Any:
        async with conn.transaction():
            result = await call(conn)
            await conn.pause("COMMIT")
        return result

    return wrapped


@dataclass
class Outcome:
    """What one run did: each session's result (or the exception it raised) and its steps, in order."""

    results: dict[str, Any]
    steps: list[str] = field(default_factory=list)
    waited: list[str] = field(default_factory=list)  # "B waits for A", once per wait
    gave_up: list[str] = field(default_factory=list)  # "B stopped waiting for A after 0.05 s" (with hold=)
    limits: list[str] = field(default_factory=list)  # "B waited for A with lock_timeout = 2s" (with hold=)
    problems: list[str] = field(default_factory=list)  # what ``watch`` reported

    def timeline(self) -> str:
        return "; ".join(self.steps) if self.steps else "no statement ran"

    def raised(self) -> dict[str, BaseException]:
        return {name: value for name, value in self.results.items() if isinstance(value, BaseException)}


class Lockstep:
    """Named connections, driven one statement at a time."""

    def __init__(self, **connections: asyncpg.Connection) -> None:
        self.sessions = {name: Gated(name, conn) for name, conn in connections.items()}

    def __getitem__(self, name: str) -> Gated:
        return self.sessions[name]

    def schedules(self, head_starts: int = 3) -> Iterator[tuple[str, int]]:
        """(first, head_start): each session first, with a head start of 1 to ``head_starts`` steps."""
        for first in self.sessions:
            for head_start in range(1, head_starts + 1):
                yield first, head_start

    async def run(
        self,
        calls: dict[str, Call],
        first: str | None = None,
        head_start: int = 1,
        watch: Callable[[asyncpg.Connection], Awaitable[str | None]] | None = None,
        hold: float | None = None,
    ) -> Outcome:
        """Start every ``calls[name](connection)`` and drive them in lockstep; return what each gave.

        ``watch``, if given, is called after every step with a connection that has no call of its own
        and no open transaction, and returns a sentence for anything wrong it sees (or None).
        ``hold``, if given, is how long a lock is held while others wait for it (see the module's
        docstring); each waiting session's own time limits are noted too."""
        run = _Run(self.sessions, calls, first or next(iter(calls)), head_start, hold)
        try:
            await run.drive(watch)
        finally:
            await run.stop()
        return run.outcome


class _Run:
    def __init__(
        self, sessions: dict[str, Gated], calls: dict[str, Call], first: str, head_start: int, hold: float | None
    ) -> None:
        self.sessions = sessions
        self.order = [first, *[name for name in calls if name != first]]
        self.head_start = head_start
        self.hold = hold
        self.outcome = Outcome(results={})
        self.blocked: set[str] = set()
        self.waits_for: dict[str, tuple[list[str], float]] = {}  # who a blocked session waits for, since when
        self.usual: dict[str, dict[str, str]] = {}  # each session's time limits before the run
        self.released = 0
        self.last: str | None = None
        self.deadline = time.monotonic() + BOUND_S
        self.calls = calls
        self.tasks: dict[str, asyncio.Task] = {}
        self.idle = [s.conn for name, s in sessions.items() if name not in calls]

    async def drive(self, watch: Callable[[asyncpg.Connection], Awaitable[str | None]] | None) -> None:
        for name in self.order:
            if self.hold is not None:  # before its call starts: what the call sets itself shows as a change
                self.usual[name] = await self.limits_of(name) or {}
            session = self.sessions[name]
            session.driven = True
            session.parked.clear()
            self.tasks[name] = asyncio.create_task(self.calls[name](session))
        for name in self.order:  # every session up to its first step
            await self.settle(name)
        while not all(task.done() for task in self.tasks.values()):
            ready = [n for n in self.order if self.is_ready(n)]
            if not ready:  # everyone left waits for a lock (the server ends a deadlock within a second)
                await asyncio.sleep(POLL_S)
                self.check_deadline()
                for name in list(self.blocked):
                    await self.settle(name)
                continue
            name = self.pick(ready)
            session = self.sessions[name]
            if self.hold is not None:
                await self.hold_for(name)
                session.limits = await self.limits_of(name) or {}
            self.outcome.steps.append(f"{name}: {session.next_step}")
            self.released += 1
            self.last = name
            session.parked.clear()
            session.go.set()
            await self.settle(name)
            for waiting in sorted(self.blocked - {name}):  # did that step let someone go on?
                await self.settle(waiting)
            if watch is not None and self.idle and not self.idle[0].is_in_transaction():
                problem = await watch(self.idle[0])
                if problem and problem not in self.outcome.problems:
                    self.outcome.problems.append(problem)
        for name, task in self.tasks.items():
            self.outcome.results[name] = task.exception() if task.exception() is not None else task.result()

    def is_ready(self, name: str) -> bool:
        return not self.tasks[name].done() and name not in self.blocked and self.sessions[name].parked.is_set()

    def pick(self, ready: list[str]) -> str:
        first = self.order[0]
        if self.released < self.head_start and first in ready:
            return first
        if self.hold is not None:  # the first session, a holder, goes on only when no other session can
            return next((name for name in ready if name != first), first)
        others = [name for name in ready if name != self.last]
        return others[0] if others else ready[0]

    async def settle(self, name: str) -> None:
        """Wait until session ``name`` stands at its next step, has finished, or waits for a lock."""
        session, task = self.sessions[name], self.tasks[name]
        while not (task.done() or session.parked.is_set()):
            holders = await self.blocked_by(name)
            if holders:
                if name not in self.blocked:
                    self.blocked.add(name)
                    self.waits_for[name] = (holders, time.monotonic())
                    waits = f"{name} waits for {', '.join(holders)}"
                    self.outcome.waited.append(waits)
                    if self.outcome.steps:
                        self.outcome.steps[-1] += f" ({waits})"
                    own = [f"{k} = {v}" for k, v in session.limits.items() if v != self.usual.get(name, {}).get(k)]
                    if self.hold is not None:
                        own += client_limits(session, task)
                    if own:
                        limits = ", ".join(own)
                        self.outcome.limits.append(f"{name} waited for {', '.join(holders)} with {limits}")
                return
            self.check_deadline()
            await asyncio.wait({task}, timeout=POLL_S)
        self.blocked.discard(name)

    async def blocked_by(self, name: str) -> list[str] | None:
        """Whose locks ``name`` waits for ([] if nobody's), or None if no connection was free to ask."""
        pid = self.sessions[name].conn.get_server_pid()
        names = {s.conn.get_server_pid(): n for n, s in self.sessions.items()}
        for other, session in self.sessions.items():
            task = self.tasks.get(other)
            free = task is None or task.done() or session.parked.is_set()
            if other == name or not free or session.conn.is_closed():
                continue
            try:
                pids = await session.conn.fetchval("SELECT pg_blocking_pids($1)", pid)
            except asyncpg.PostgresError:  # that session's transaction is aborted: ask another one
                continue
            return [names.get(p, f"server process {p}") for p in pids]
        return None

    async def hold_for(self, name: str) -> None:
        """Before ``name`` takes its next step (a COMMIT may free its locks): let each session that waits for it
        wait ``hold`` seconds in all, and note one that stops waiting before that."""
        for waiter in sorted(self.blocked):
            holders, since = self.waits_for[waiter]
            if name not in holders:
                continue
            task, session = self.tasks[waiter], self.sessions[waiter]
            while time.monotonic() - since < (self.hold or 0):
                if task.done() or session.parked.is_set():
                    waited = time.monotonic() - since
                    self.outcome.gave_up.append(f"{waiter} stopped waiting for {name} after {waited:.2f} s")
                    self.outcome.steps.append(f"{waiter}: stopped waiting after {waited:.2f} s, {name} still holding")
                    self.blocked.discard(waiter)
                    break
                await asyncio.wait({task}, timeout=POLL_S)

    async def limits_of(self, name: str) -> dict[str, str] | None:
        """The time limits in force on session ``name`` now (it stands before a step), or None if it cannot say
        (its transaction is aborted)."""
        conn = self.sessions[name].conn
        try:
            return {limit: await conn.fetchval(f"SHOW {limit}") for limit in LIMITS}
        except asyncpg.PostgresError:
            return None

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            busy = [name for name, task in self.tasks.items() if not task.done()]
            raise Stuck(f"{' and '.join(busy)} still had not finished after {BOUND_S:.0f} s: {self.outcome.timeline()}")

    async def stop(self) -> None:
        for name, task in self.tasks.items():
            self.sessions[name].driven = False
            self.sessions[name].go.set()  # a session still parked finishes on its own
            if not task.done():
                task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
