"""An owner's one session on the server, which vouches for its databases while it lives.

Every owner process (kernel, pytest session, xdist worker) keeps ONE connection open on the
server's admin database, and on it a session-level advisory lock for each database it owns.
No PIDs, clocks or host names are involved, so other machines, PID namespaces, ``hidepid`` and
clock steps cannot fool it: a killed process's socket closes and the server releases its locks.

A session can also be lost while its owner lives: cut by an administrator or by a server's
``idle_session_timeout``, a network blip, a pooler, a server restart. The keeper comes back
within RECONNECT_BOUND of the server answering again, takes its locks back (checking that it
got each one, and that its database is still there) and clears any mark a sweep left meanwhile
(``databases.vouch``). Sweeps wait far longer than that before they drop a database whose lock
is free (``Settings.sweep_grace``). If a database is gone anyway, the keeper records what it
knows of why, and the owner says so the next time it is used (``lost``).

The session is immune to the server's idle timeouts and uses TCP keepalives. It connects to
the server the state file names at that moment (``url_source``): after a restart the port or
password may have changed, and an old port may belong to someone else by then.

It lives in a daemon thread with its own event loop (a kernel already runs one in its main
thread), never blocks interpreter exit, and is left alone by a forked child, which is a new
owner of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import asyncpg

from . import databases, names
from .names import OWNER_LOCKS

T = TypeVar("T")

CONNECT_TIMEOUT = 10
WATCH_INTERVAL = 0.2  # how often a lock the session could not take back yet is tried again
RETRY_MAX = 1.0  # back-off cap while the server is away
# Once the server answers again, a keeper has its locks back within this many seconds: it hears
# of the loss at once (or within WATCH_INTERVAL), waits at most RETRY_MAX between attempts, and
# each attempt is bounded by CONNECT_TIMEOUT; the rest is room for the statements that follow.
RECONNECT_BOUND = 15.0
# Server settings that would end an idle session: the keeper's session is idle by design.
IMMUNE_TO = ("idle_session_timeout", "idle_in_transaction_session_timeout")
KEEPALIVE = {"TCP_KEEPIDLE": 10, "TCP_KEEPALIVE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}  # seconds; probes

UrlSource = Callable[[], "str | None"]


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def _keepalive(conn: asyncpg.Connection) -> None:
    """Probe an idle TCP session, so a dead peer is noticed in ~25 s, not hours."""
    sock = conn._transport.get_extra_info("socket") if conn._transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a Unix socket: the kernel tells us when the server goes
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in KEEPALIVE.items():
        if hasattr(socket, option):  # each platform has its own subset
            try:
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
            except OSError:
                pass  # an older kernel without it: SO_KEEPALIVE with the system's timings


class Keeper:
    """The session of one owner process on one server."""

    def __init__(self, url_source: UrlSource | str, application_name: str) -> None:
        self.url_source: UrlSource = url_source if callable(url_source) else (lambda: url_source)
        self.application_name = application_name
        self.pid = os.getpid()
        self.held: dict[str, int] = {}  # databases this session vouches for: name -> lock key
        self.pending: set[str] = set()  # ... of which the current session has not got the lock back yet
        self.lost: dict[str, str] = {}  # databases found gone: name -> what is known of why
        self.conn: asyncpg.Connection | None = None
        self._backend: tuple[int, Any] | None = None  # (pid, backend_start) of the session on the server
        self._life: databases.Life | None = None
        self._away_since: float | None = None  # when the session was found lost (this machine's clock)
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
        self._wake = asyncio.Event()
        self._watcher = self.loop.create_task(self._watch())
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()  # and with it its self-pipe: nothing left for the garbage collector

    async def _watch(self) -> None:
        """Re-open the session (and take the locks back) whenever it is lost."""
        delay = WATCH_INTERVAL
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass  # nobody woke us: look at the session anyway, every ``delay`` seconds
            self._wake.clear()
            alive = self.conn is not None and not self.conn.is_closed()
            if alive and not self.pending:
                delay = WATCH_INTERVAL
                continue
            if not alive and not self.held:
                continue  # nothing to vouch for: the next call connects
            try:
                async with self.lock:
                    await self._connect()
                delay = WATCH_INTERVAL
            except Exception:
                delay = min(delay * 2, RETRY_MAX)  # the server is away; try again soon

    def _lost_session(self, _conn: object = None) -> None:
        if self._away_since is None:
            self._away_since = time.time()
        self._wake.set()

    async def _connect(self) -> asyncpg.Connection:
        if self.conn is not None and not self.conn.is_closed():
            if self.pending:
                await self._take_back()
            return self.conn
        if self.conn is not None:
            self._lost_session()  # closed, and the listener did not say so (e.g. closed by us)
        url = self.url_source()
        if url is None:
            raise ConnectionRefusedError("no server is recorded as running")
        conn = await asyncpg.connect(
            url, timeout=CONNECT_TIMEOUT, server_settings={"application_name": self.application_name}
        )
        try:
            _keepalive(conn)
            await conn.execute(
                "SELECT set_config(name, '0', false) FROM pg_settings WHERE name = ANY($1::text[])", list(IMMUNE_TO)
            )
            row = await conn.fetchrow("SELECT pg_backend_pid() AS pid, backend_start FROM pg_stat_activity"
                                      " WHERE pid = pg_backend_pid()")  # fmt: skip
            life = await databases.server_life(conn, with_system=True)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._lost_session)
        previous, self._backend = self._backend, (row["pid"], row["backend_start"])
        old_life, self._life = self._life, life
        self.conn = conn
        self.pending = set(self.held)
        if previous is not None and self.pending:
            # The server may not have noticed yet that our last session is gone (a network blip):
            # it would keep our locks. It is ours, so end it (unless a pooler gave it back to us).
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid = $1 AND backend_start = $2 AND application_name = $3 AND pid <> pg_backend_pid()",
                *previous,
                self.application_name,
            )
        await self._take_back(old_life)
        self._away_since = None
        return conn

    async def _take_back(self, old_life: databases.Life | None = None) -> None:
        """Take each pending lock back, if free; a database found gone is recorded as lost."""
        assert self.conn is not None
        for name in sorted(self.pending):
            key = self.held[name]
            if not await self.conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", OWNER_LOCKS, key):
                continue  # held by a sweep for a moment, or by our old session on its way out: next tick
            self.pending.discard(name)  # taken: never take it twice (advisory locks stack)
            try:
                if await databases.vouch(self.conn, name):
                    continue
            except databases.NOT_OURS:
                continue  # a read-only session cannot clear a mark, but holds the lock
            await self.conn.fetchval("SELECT pg_advisory_unlock($1, $2)", OWNER_LOCKS, key)
            del self.held[name]
            self.lost[name] = self.why_gone(old_life)

    def why_gone(self, old_life: databases.Life | None = None) -> str:
        """What this keeper saw around a database's loss, as a clause of the owner's one sentence."""
        if self._away_since is None:
            return (
                "it was dropped while your session held its lock, so not by a sweep "
                "(a DROP DATABASE, or 'python -m coursedb stop')"
            )
        now, life = _clock(time.time()), self._life
        if old_life is None or life is None or life == old_life:
            seen = f"your session to the server was found lost at {_clock(self._away_since)} and came back at {now}"
        elif life.system != old_life.system:
            seen = (
                f"your session ended with the server, and at {now} it came back to a new one "
                "(made afresh, e.g. after 'python -m coursedb stop')"
            )
        elif life.started != old_life.started:
            seen = f"your session ended when the server restarted at {_clock(life.started)}, and came back at {now}"
        else:
            seen = (
                f"your session ended when the server crashed (it recovered at {_clock(life.reset or 0)}), back at {now}"
            )
        return seen + "; meanwhile its lock was free and it was dropped (a sweep drops one free for its whole grace)"

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
        """The live session, re-opened (locks taken back) if it was lost. Callers hold ``self.lock``."""
        return await self._connect()

    async def reserve(self, pid: int) -> str:
        """Take a fresh owner lock and return the name of the database it will vouch for.

        The lock is taken BEFORE the database exists, so no sweeper ever sees it unlocked.
        """
        conn = await self.session()
        while True:
            key = secrets.randbits(4 * names.KEY_DIGITS)
            if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", OWNER_LOCKS, key):
                name = names.owner_database(pid, key)
                self.held[name] = key
                return name

    async def release(self, name: str) -> None:
        key = self.held.pop(name, None)
        self.pending.discard(name)
        if key is not None and self.conn is not None and not self.conn.is_closed():
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
                self.conn.remove_termination_listener(self._lost_session)
                try:
                    await asyncio.wait_for(self.conn.close(), timeout)
                except Exception:
                    self.conn.terminate()

        try:
            self.call(finish(), timeout + 1)
        except Exception:
            pass  # finish() ran out of time or the loop is gone: the loop is stopped below either way
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return  # closed already
        self.thread.join(timeout)
