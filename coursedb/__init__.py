"""coursedb: one real PostgreSQL server for the course, and a database of your own on it.

Public API::

    coursedb.database_url()  -> DSN of this process's own database (made on first use)
    coursedb.ensure_server() -> state of the shared server (started on first use)
    coursedb.status()        -> what is running, without starting anything
    coursedb.stop()          -> stop the server, remove everything coursedb made
    coursedb.init_connection -> pool ``init=`` hook that registers the course's codecs
    coursedb.CourseDBError   -> every problem a user can fix, as one readable sentence

The server is chosen by ``COURSEDB_BACKEND`` (auto|docker|embedded|url) and ``COURSEDB_URL``.
"""

from __future__ import annotations

# First, before asyncpg: `python -m coursedb ...` typed in a plain shell runs in the course's .venv.
from .platform import reexec_in_course_venv

reexec_in_course_venv()

import atexit
import os
import sys
import threading
from dataclasses import dataclass

import asyncpg

from . import databases, names, room, server
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
    """A database this process made, on the server at ``admin_url``."""

    admin_url: str
    name: str


_lock = threading.Lock()
# (pid, home) -> what that process owns there. Keyed by pid too: a forked child is a new owner.
_own: dict[tuple[int, str], _Owned] = {}
# admin_url -> this process's one session on that server (see keeper).
_keepers: dict[str, Keeper] = {}
_said: set[str] = set()  # notes already printed by this process
_abandoned: list[Keeper] = []  # a forked child's copies of its parent's keepers (see _after_fork)
# A bound on database_url(): a frozen server gives a sentence, not a hung cell.
TAKE_TIMEOUT = databases.BUILD_WAIT + 2 * databases.CONNECT_TIMEOUT


def ensure_server(settings: Settings | None = None) -> ServerState:
    """Start the shared server if it is not running, and return its state."""
    return server.ensure(settings)


def database_url(settings: Settings | None = None) -> str:
    """DSN of a database that belongs to this process alone, cloned from the course template.

    The first call creates it; later calls return it again (re-creating it if the server was
    restarted meanwhile, or the template changed). It lives while this process does: a session
    the process keeps open vouches for it. It is dropped when the process exits, or, if the
    process is killed, by the next process that takes a database.
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
        keeper = _keeper(admin_url)
        kind = databases.owner_kind()

        async def take() -> str:
            async with keeper.lock:
                conn = await keeper.session()
                if mine is not None and mine.admin_url == admin_url:
                    if await databases.exists(conn, mine.name):
                        return mine.name
                    await keeper.release(mine.name)  # 'coursedb stop' dropped it: take a new one
                while True:
                    name = await keeper.reserve(os.getpid())
                    try:
                        await databases.take_database(conn, admin_url, name, kind)
                        return name
                    except asyncpg.DuplicateDatabaseError:
                        await keeper.release(name)  # a stale one of the same name (1 in 16 million)
                    except BaseException:
                        await keeper.release(name)
                        raise

        try:
            name = keeper.call(take(), TAKE_TIMEOUT)
        except databases.DB_ERRORS as exc:
            if room.full_server_error(exc) is not None:
                raise CourseDBError(room.full_server_message(exc)) from None
            raise CourseDBError(
                f"The {state.backend} server is running but creating your database on it failed: {reason(exc)}"
            ) from None
        if not _own:
            atexit.register(_drop_own)
        _own[key] = _Owned(admin_url, name)
        _close_unused_keepers()  # e.g. a server this process no longer uses: one session per owner
        return databases.url_for(admin_url, name)


def _keeper(admin_url: str) -> Keeper:
    keeper = _keepers.get(admin_url)
    if keeper is None:
        keeper = _keepers[admin_url] = Keeper(admin_url, names.owner_session(databases.owner_kind(), os.getpid()))
    return keeper


def _drop_own(home: str | None = None) -> None:
    """At exit: drop this process's databases, end its sessions; bounded, never blocks exit.

    With ``home``: only the databases on that home's server (tests that end an owner early).
    """
    for key in [k for k in _own if k[0] == os.getpid() and home in (None, k[1])]:
        mine = _own.pop(key)
        keeper = _keepers.get(mine.admin_url)
        if keeper is None:
            continue

        async def drop(keeper: Keeper = keeper, name: str = mine.name) -> None:
            async with keeper.lock:
                if keeper.conn is not None and not keeper.conn.is_closed():
                    await databases.drop_database(keeper.conn, name)
                await keeper.release(name)

        try:
            keeper.call(drop(), 5)
        except Exception:
            pass  # the server is gone or frozen: the next owner's sweep drops it (no lock is held)
    _close_unused_keepers()


def _close_unused_keepers() -> None:
    """One session per server this process still owns a database on; no others."""
    used = {o.admin_url for k, o in _own.items() if k[0] == os.getpid()}
    for url in [u for u in _keepers if u not in used]:
        _keepers.pop(url).close()


def _after_fork() -> None:
    """In a forked child: the parent's sessions are the parent's. Forget them, close our copy
    of their sockets (the parent's stay open), and keep the objects so nothing ever finalizes
    them onto a file descriptor number that gets reused."""
    global _lock
    _lock = threading.Lock()
    for keeper in _keepers.values():
        _abandoned.append(keeper)
        try:
            sock = keeper.conn._transport.get_extra_info("socket") if keeper.conn is not None else None
            if sock is not None:
                os.close(sock.fileno())
        except Exception:
            pass
    _keepers.clear()


os.register_at_fork(after_in_child=_after_fork)


def status(settings: Settings | None = None) -> server.Status:
    """The shared server's state and databases (``.running`` is False when none runs)."""
    return server.status(settings)


def stop(settings: Settings | None = None) -> list[str]:
    """Stop the shared server and remove every process, container and file coursedb made."""
    settings = settings or Settings.from_env()
    with _lock:
        for key in [k for k in _own if k[1] == str(settings.home)]:
            del _own[key]
        _close_unused_keepers()  # nothing left to vouch for there
    return server.stop(settings)
