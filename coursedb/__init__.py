"""coursedb: one real PostgreSQL server for the course, and a database of your own on it.

Public API::

    coursedb.database_url()  -> DSN of this process's own database (made on first use)
    coursedb.ensure_server() -> state of the shared server (started on first use)
    coursedb.status()        -> what is running, without starting anything
    coursedb.stop()          -> stop the server, remove everything coursedb made (not under live kernels)
    coursedb.init_connection -> pool ``init=`` hook that registers the course's codecs
    coursedb.CourseDBError   -> every problem a user can fix, as one readable sentence

The server is chosen by ``COURSEDB_BACKEND`` (auto|docker|embedded|url) and ``COURSEDB_URL``.
"""

from __future__ import annotations

# First, before asyncpg: `python -m coursedb ...` typed in a plain shell runs in the course's .venv.
from .platform import reexec_in_course_venv

reexec_in_course_venv()

import asyncio
import atexit
import os
import sys
import threading
from dataclasses import dataclass

import asyncpg

from . import backends, databases, names, room, server
from .backends import ServerState
from .codecs import init_connection
from .errors import CourseDBError, reason
from .keeper import Keeper
from .migrate import empty_tables, migrate
from .settings import Settings

__all__ = [
    "CourseDBError",
    "ServerState",
    "Settings",
    "database_url",
    "empty_tables",
    "ensure_server",
    "init_connection",
    "migrate",
    "status",
    "stop",
]


@dataclass(frozen=True)
class _Owned:
    """A database this process made, on the server of one home."""

    server: tuple[str, str | None]  # _server_of() its state
    admin_url: str  # as it was then: an embedded server's may change when it restarts
    name: str


_lock = threading.Lock()
# (pid, home) -> what that process owns there. Keyed by pid too: a forked child is a new owner.
_own: dict[tuple[int, str], _Owned] = {}
# home -> this process's one session on that home's server (see keeper), and which server it is.
_keepers: dict[str, tuple[tuple[str, str | None], Keeper]] = {}
_said: set[str] = set()  # notes already printed by this process
_abandoned: list[Keeper] = []  # a forked child's copies of its parent's keepers (see _after_fork)
# A bound on database_url(): a frozen server gives a sentence, not a hung cell.
TAKE_TIMEOUT = databases.BUILD_WAIT + 2 * databases.CONNECT_TIMEOUT
TAKE_ATTEMPTS = 5  # a session cut while it takes a database is opened again and the take starts over


def ensure_server(settings: Settings | None = None) -> ServerState:
    """Start the shared server if it is not running, and return its state."""
    return server.ensure(settings)


def _server_of(state: ServerState) -> tuple[str, str | None]:
    """Which server a state names: a home's own server whatever its port, or the URL's."""
    return state.backend, None if backends.runs_server(state) else state.admin_url


def database_url(settings: Settings | None = None) -> str:
    """DSN of a database that belongs to this process alone, cloned from the course template.

    The first call creates it; later calls return it again. It lives while this process does: a
    session the process keeps open vouches for it, and comes back if it is lost. It is dropped
    when the process exits, or, if the process is killed, by a later sweep once no session has
    held its lock for the grace. If it is gone anyway, the next call says so and why, in one
    sentence (CourseDBError); the call after that makes a new, empty one.
    """
    settings = settings or Settings.from_env()
    with _lock:
        state = server.ensure(settings)
        note = server.mismatch(settings, state)
        if note and note not in _said:
            _said.add(note)  # once per process: a kernel's every %%ipytest cell calls this
            print(f"coursedb: {note}", file=sys.stderr)
        admin_url = state.admin_url
        key = (os.getpid(), str(settings.home))
        mine = _own.get(key)
        keeper = _keeper(settings, state)
        kind = databases.owner_kind()

        async def take_once() -> tuple[str | None, str | None]:
            """(name, None), or (None, why) when this process's database is gone."""
            conn = await keeper.session()
            if mine is not None and mine.server == _server_of(state):
                why = keeper.lost.pop(mine.name, None)
                if why is None and mine.name in keeper.held:
                    if await databases.exists(conn, mine.name):
                        return mine.name, None
                    why = keeper.why_gone()
                await keeper.release(mine.name)
                return None, why or "this process's session no longer vouched for it"
            if mine is not None and mine.name in keeper.held:
                await keeper.release(mine.name)  # COURSEDB_URL names another server now
            while True:
                name = await keeper.reserve(os.getpid())
                try:
                    await databases.take_database(conn, admin_url, name, kind, settings.sweep_grace)
                    return name, None
                except asyncpg.DuplicateDatabaseError:
                    await keeper.release(name)  # a stale one of the same name (1 in 16 million)
                except BaseException:
                    await keeper.release(name)  # half made, if at all: unlocked, a sweep's after the grace
                    raise

        async def take() -> tuple[str | None, str | None]:
            async with keeper.lock:
                attempts = 1
                while True:
                    try:
                        return await take_once()
                    except databases.DB_ERRORS:
                        cut = keeper.conn is None or keeper.conn.is_closed()
                        if not cut or attempts == TAKE_ATTEMPTS:
                            raise
                        attempts += 1  # the session was cut under us: it comes back, and so do its locks

        try:
            name, why = keeper.call(take(), TAKE_TIMEOUT)
        except databases.DB_ERRORS as exc:
            if room.full_server_error(exc) is not None:
                raise CourseDBError(room.full_server_message(exc)) from None
            frozen = isinstance(exc, asyncio.TimeoutError | TimeoutError) and backends.runs_server(state)
            raise CourseDBError(
                f"The {state.backend} server is running but creating your database on it failed: {reason(exc)}"
                + ("; if it stays so, 'python -m coursedb stop' ends it" if frozen else "")
            ) from None
        if name is None:
            assert mine is not None
            del _own[key]  # said once; the next call makes a new one
            raise CourseDBError(
                f"Your database {mine.name} is gone, and the rows in it with it: {why}; "
                "run this again for a new, empty database."
            )
        if not _own:
            atexit.register(_drop_own)
        _own[key] = _Owned(_server_of(state), admin_url, name)
        _close_unused_keepers()  # e.g. a server this process no longer uses: one session per owner
        return databases.url_for(admin_url, name)


def _keeper(settings: Settings, state: ServerState) -> Keeper:
    """This process's session on the home's server, following it across restarts (new port, password)."""
    home = str(settings.home)
    found = _keepers.get(home)
    if found is not None and found[0] == _server_of(state):
        return found[1]
    if found is not None:
        found[1].close()  # the home names another server now
    keeper = Keeper(server.follow(settings, state), names.owner_session(databases.owner_kind(), os.getpid()))
    _keepers[home] = (_server_of(state), keeper)
    return keeper


def own_session() -> Keeper | None:
    """This process's session on the server of the database it took, or None before ``database_url()``.

    For what must ride on that one session rather than open a connection (a checker's outcome)."""
    pid = os.getpid()
    for owner_pid, home in list(_own):
        found = _keepers.get(home) if owner_pid == pid else None
        if found is not None:
            return found[1]
    return None


def _drop_own(home: str | None = None) -> None:
    """At exit: drop this process's databases, end its sessions; bounded, never blocks exit.

    With ``home``: only the databases on that home's server (tests that end an owner early).
    """
    for key in [k for k in _own if k[0] == os.getpid() and home in (None, k[1])]:
        mine = _own.pop(key)
        found = _keepers.get(key[1])
        if found is None:
            continue
        keeper = found[1]

        async def drop(keeper: Keeper = keeper, name: str = mine.name) -> None:
            async with keeper.lock:
                if keeper.conn is not None and not keeper.conn.is_closed() and name in keeper.held:
                    await databases.drop_database(keeper.conn, name)
                await keeper.release(name)

        try:
            keeper.call(drop(), 5)
        except Exception:
            pass  # the server is gone or frozen: a later sweep drops it (no lock is held)
    _close_unused_keepers()


def _close_unused_keepers() -> None:
    """One session per server this process still owns a database on; no others."""
    used = {k[1] for k in _own if k[0] == os.getpid()}
    for home in [h for h in _keepers if h not in used]:
        _keepers.pop(home)[1].close()


def _after_fork() -> None:
    """In a forked child: the parent's sessions are the parent's. Forget them, close our copy
    of their sockets (the parent's stay open), and keep the objects so nothing ever finalizes
    them onto a file descriptor number that gets reused."""
    global _lock
    _lock = threading.Lock()
    for _, keeper in _keepers.values():
        _abandoned.append(keeper)
        try:
            sock = keeper.conn._transport.get_extra_info("socket") if keeper.conn is not None else None
            if sock is not None:
                os.close(sock.fileno())
        except (AttributeError, OSError):
            pass  # no transport or an fd already closed: nothing of the parent's is held here
    _keepers.clear()


os.register_at_fork(after_in_child=_after_fork)


def status(settings: Settings | None = None) -> server.Status:
    """The shared server's state and databases (``.running`` is False when none runs)."""
    return server.status(settings)


def stop(settings: Settings | None = None, force: bool = False) -> list[str]:
    """Stop the shared server and remove every process, container and file coursedb made.

    Refused (CourseDBError) while other kernels or test runs hold databases on it, unless ``force``.
    """
    settings = settings or Settings.from_env()
    with _lock:
        for key in [k for k in _own if k[1] == str(settings.home)]:
            del _own[key]
        _close_unused_keepers()  # nothing left to vouch for there
    return server.stop(settings, force)
