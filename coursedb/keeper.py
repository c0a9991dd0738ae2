"""An owner's one session on the server, which vouches for its databases while it lives.

Every owner process (kernel, pytest session, xdist worker) keeps ONE connection open on the
server's admin database, and on it a session-level advisory lock for each database it owns.
A database is stale exactly when no session holds its lock: a killed process's socket closes
at once and the server releases its locks; a suspended laptop keeps its session and so its
database. No PIDs, clocks or host names are involved, so other machines, PID namespaces,
``hidepid`` and clock steps cannot fool it.

The session lives in a daemon thread with its own event loop (a kernel already runs one in
its main thread), reconnects and takes its locks again when the server restarts, never blocks
interpreter exit, and is left alone by a forked child, which is a new owner of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg

from . import names
from .names import OWNER_LOCKS

T = TypeVar("T")

CONNECT_TIMEOUT = 10
WATCH_INTERVAL = 0.2  # how soon a lost session is noticed and re-opened (after a server restart)
RETRY_MAX = 1.0  # back-off cap while the server is away


class Keeper:
    """The session of one owner process on one server."""

    def __init__(self, admin_url: str, application_name: str) -> None:
        self.admin_url = admin_url
        self.application_name = application_name
        self.pid = os.getpid()
        self.keys: set[int] = set()
        self.conn: asyncpg.Connection | None = None
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._closing = False
        self.thread = threading.Thread(target=self._run, name="coursedb-keeper", daemon=True)
        self.thread.start()
        self._ready.wait()

    # --- the keeper's own thread --------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.lock = asyncio.Lock()
        self._watcher = self.loop.create_task(self._watch())
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()  # and with it its self-pipe: nothing left for the garbage collector

    async def _watch(self) -> None:
        """Re-open the session (and take the locks again) whenever it is lost."""
        delay = WATCH_INTERVAL
        while not self._closing:
            await asyncio.sleep(delay)
            if self.conn is not None and not self.conn.is_closed():
                delay = WATCH_INTERVAL
                continue
            if self.conn is None and not self.keys:
                continue  # nothing to vouch for yet: the first call connects
            try:
                async with self.lock:
                    await self._connect()
                delay = WATCH_INTERVAL
            except Exception:
                delay = min(delay * 2, RETRY_MAX)  # the server is away; try again soon

    async def _connect(self) -> asyncpg.Connection:
        if self.conn is not None and not self.conn.is_closed():
            return self.conn
        conn = await asyncpg.connect(
            self.admin_url,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": self.application_name},
        )
        for key in list(self.keys):
            # After a server restart: the databases are back, so are their locks.
            await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", OWNER_LOCKS, key)
        self.conn = conn
        return conn

    # --- called from any other thread ---------------------------------------------------------

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the keeper's loop and wait for it (from any thread but the keeper's)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # and with it whatever it waited for on the server
            raise TimeoutError() from None

    async def session(self) -> asyncpg.Connection:
        """The live session, re-opened if the server restarted. Callers hold ``self.lock``."""
        return await self._connect()

    async def reserve(self, pid: int) -> str:
        """Take a fresh owner lock and return the name of the database it will vouch for.

        The lock is taken BEFORE the database exists, so no sweeper ever sees it unlocked.
        """
        conn = await self.session()
        while True:
            key = secrets.randbits(4 * names.KEY_DIGITS)
            if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", OWNER_LOCKS, key):
                self.keys.add(key)
                return names.owner_database(pid, key)

    async def release(self, name: str) -> None:
        key = names.lock_key(name)
        if key is None or key not in self.keys:
            return
        self.keys.discard(key)
        if self.conn is not None and not self.conn.is_closed():
            await self.conn.fetchval("SELECT pg_advisory_unlock($1, $2)", OWNER_LOCKS, key)

    def close(self, timeout: float = 2.0) -> None:
        """End the session and the thread; bounded, for atexit."""
        if self.pid != os.getpid():
            return  # a forked child's copy: the session is the parent's
        self._closing = True

        async def finish() -> None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            if self.conn is not None and not self.conn.is_closed():
                try:
                    await asyncio.wait_for(self.conn.close(), timeout)
                except Exception:
                    self.conn.terminate()

        try:
            self.call(finish(), timeout + 1)
        except Exception:
            pass
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return  # closed already
        self.thread.join(timeout)
