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

import atexit
import os
import threading
from dataclasses import dataclass

from . import databases, server
from ._aio import run_sync
from .backends import ServerState
from .codecs import init_connection
from .errors import CourseDBError
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


def ensure_server(settings: Settings | None = None) -> ServerState:
    """Start the shared server if it is not running, and return its state."""
    return server.ensure(settings)


def database_url(settings: Settings | None = None) -> str:
    """DSN of a database that belongs to this process alone, cloned from the course template.

    The first call creates it; later calls return it again (re-creating it if the server was
    restarted meanwhile). It is dropped when the process exits, or, if the process is killed,
    by the next process that takes a database.
    """
    settings = settings or Settings.from_env()
    with _lock:
        state = server.ensure(settings)
        admin_url = state.admin_url
        key = (os.getpid(), str(settings.home))
        try:
            mine = _own.get(key)
            if mine is not None and mine.admin_url == admin_url and run_sync(databases.exists(admin_url, mine.name)):
                return databases.url_for(admin_url, mine.name)
            # Leftovers of killed kernels and runs go first, on the same connection.
            name = run_sync(databases.take_database(admin_url, databases.owner_kind()))
        except databases.DB_ERRORS as exc:
            raise CourseDBError(
                f"The {state.backend} server is running but creating your database on it failed: {exc}"
            ) from None
        if not _own:
            atexit.register(_drop_own)
        _own[key] = _Owned(admin_url, name)
        return databases.url_for(admin_url, name)


def _drop_own() -> None:
    for key in [k for k in _own if k[0] == os.getpid()]:
        try:
            mine = _own.pop(key)
            run_sync(databases.drop(mine.admin_url, mine.name))
        except Exception:
            pass  # the next process that takes a database drops it as stale


def status(settings: Settings | None = None) -> server.Status:
    """The shared server's state and databases (``.running`` is False when none runs)."""
    return server.status(settings)


def stop(settings: Settings | None = None) -> list[str]:
    """Stop the shared server and remove every process, container and file coursedb made."""
    settings = settings or Settings.from_env()
    with _lock:
        for key in [k for k in _own if k[1] == str(settings.home)]:
            del _own[key]
    return server.stop(settings)
