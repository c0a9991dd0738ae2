"""A database dies only when its owner provably has: faults on the owners' sessions.

An owner's session (its keeper) is cut over and over, by an administrator
(``pg_terminate_backend``) or by the server's ``idle_session_timeout``, for as long as it takes each
keeper to be cut several times (or to sit idle for several timeouts) while other owners start; the server is killed and
restarted with a crash recovery slowed down past the old 5 s restart grace; owners are suspended
(SIGSTOP) across a restart; sweeps run right after a cut. Through all of it, no database whose
owner lives is dropped and every committed row stays; a really killed owner's database is still
swept once its lock has been free for the grace. On the embedded server and on a stock
PostgreSQL 15 reached through COURSEDB_URL as an ordinary role (coursebook/system_postgres.py).

The sweeps here use a short grace (COURSEDB_SWEEP_GRACE, GRACE seconds), still far longer than a
keeper needs to come back on an idle machine. Every wait is bounded and timed; the times are
printed (pytest -s), never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
import pytest

from coursedb import databases, names
from tests.helpers import (
    PYTHON,
    Asker,
    cleanup,
    cli,
    database_names,
    dbname,
    end_owner,
    env_for,
    fetch,
    make_home,
    owned,
    run,
    settings_for,
    start_owner,
    wait_until_locked,
)

pytestmark = pytest.mark.timeout(180)

GRACE = 4  # seconds: the sweeps' grace in these tests
# The faults last until enough of them happened, however busy the machine: each holder's keeper session
# cut CUTS_EACH times (or idle for IDLE_TIMEOUTS timeouts of IDLE_TIMEOUT s) while STARTS other owners
# started, each start sweeping.
CUTS_EACH = 5
IDLE_TIMEOUT = 1
IDLE_TIMEOUTS = 3
STARTS = 8
WAIT = 60  # bound on any wait for an owner or a sweep


def timed(what: str, started: float) -> float:
    took = time.monotonic() - started
    print(f"{what}: {took:.2f} s")
    return took


# --- the servers -----------------------------------------------------------------------------


@dataclass
class Room:
    """A server and how its owners reach it: ``env`` for their processes, ``superuser_url`` for faults."""

    where: str
    home: Path
    env: dict[str, str]
    superuser_url: str
    data: Path  # the server's data directory
    log: Path


@contextlib.contextmanager
def server(where: str) -> Iterator[Room]:
    home = make_home()
    try:
        if where == "embedded":
            env = {"COURSEDB_SWEEP_GRACE": str(GRACE)}
            assert cli(home, "start", **env).returncode == 0
            admin_url = json.loads((home / "state.json").read_text())["admin_url"]
            yield Room(where, home, env, admin_url, home / "data", home / "server.log")
            return
        from coursebook.system_postgres import available, system_postgres  # POSIX only (pwd)

        reason = available()
        if reason:
            pytest.skip(reason)
        with system_postgres() as pg:
            env = {"COURSEDB_BACKEND": "url", "COURSEDB_URL": pg.room_url, "COURSEDB_SWEEP_GRACE": str(GRACE)}
            yield Room(where, home, env, pg.superuser_url, pg.folder / "data", pg.log)
    finally:
        cleanup(home)


def kill_server(room: Room) -> None:
    """SIGKILL every process of the server, and wait until they are gone."""
    started = time.monotonic()
    for postmaster in [p for p in postmasters_of(room) if p.parent() is None or p.parent().name() != "postgres"]:
        for proc in [*postmaster.children(), postmaster]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
    while postmasters_of(room):
        assert time.monotonic() - started < WAIT, "the killed server did not go away"
        time.sleep(0.01)
    if room.where != "embedded":
        # A container's init may never reap the postmaster: its zombie's PID, in the lock files,
        # would look alive to the next postmaster.
        for lock in [room.data / "postmaster.pid", *room.data.parent.glob(".s.PGSQL.*.lock")]:
            lock.unlink(missing_ok=True)


def postmasters_of(room: Room) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        alive = proc.info["name"] == "postgres" and proc.info["status"] != psutil.STATUS_ZOMBIE
        if alive and str(room.data) in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


def restart_server(room: Room) -> subprocess.Popen:
    """Start the killed server again, in the background: `coursedb start`, or pg_ctl for PostgreSQL 15."""
    if room.where == "embedded":
        command = [PYTHON, "-m", "coursedb", "start"]
    else:  # pg_ctl restart runs it with the options it had (postmaster.opts)
        command = ["pg_ctl", "-D", str(room.data), "-l", str(room.log), "-m", "immediate", "-w", "restart"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
    env = env_for(room.home, **room.env)
    return subprocess.Popen(command, env=env, cwd="/tmp", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SERVERS = ["embedded", "postgresql15"]


async def keeper_sessions(superuser_url: str) -> dict[int, int]:
    """pid of each owner's keeper session, by the owner's pid (from application_name, via coursedb.names)."""
    rows = await fetch(superuser_url, "SELECT pid, application_name FROM pg_stat_activity")
    found = {}
    for row in rows:
        session = names.parse_session(row["application_name"] or "")
        if session is not None and session.kind != "admin":
            found[session.pid] = row["pid"]
    return found


class Cutter(threading.Thread):
    """Terminates every keeper session on the server about every 0.7 s (0.4-1.0 s, at random); counts
    the cuts by owner (pid)."""

    def __init__(self, superuser_url: str) -> None:
        super().__init__(daemon=True)
        self.superuser_url = superuser_url
        self.cuts: Counter[int] = Counter()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._cut())
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc

    async def _cut(self) -> None:
        conn = await asyncpg.connect(self.superuser_url)
        try:
            while not self.done.is_set():
                for owner, pid in (await keeper_sessions(self.superuser_url)).items():
                    if await conn.fetchval("SELECT pg_terminate_backend($1)", pid):
                        self.cuts[owner] += 1
                await asyncio.sleep(random.uniform(0.4, 1.0))
        finally:
            await conn.close()


class Starters(threading.Thread):
    """Owners that start (each start sweeps) and end, one after the other, as kernels in a room do."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.home, self.env = home, env
        self.started = 0
        self.failures: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                proc, _ = start_owner(self.home, **self.env)
            except AssertionError as exc:
                self.failures.append(str(exc))
                continue
            self.started += 1
            end_owner(proc)


class Sweeper(threading.Thread):
    """Sweeps (with the grace) every 50 ms, from the moment the server takes connections: a room
    full of kernels starting at once, as early as any could."""

    def __init__(self, admin_url: str) -> None:
        super().__init__(daemon=True)
        self.admin_url = admin_url
        self.sweeps = 0
        self.dropped: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        asyncio.run(self._sweep())

    async def _sweep(self) -> None:
        while not self.done.is_set():
            try:
                async with databases.admin_connection(self.admin_url) as conn:
                    self.dropped += (await databases.drop_stale(conn, GRACE)).dropped
                    self.sweeps += 1
            except databases.DB_ERRORS:
                pass  # the server is away, or still recovering
            await asyncio.sleep(0.05)


def rows_of(url: str) -> list[str]:
    return [r["email"] for r in run(fetch(url, "SELECT email FROM users ORDER BY email"))]


def admin_url_of(room: Room) -> str:
    return json.loads((room.home / "state.json").read_text())["admin_url"]


def wait_for(done: Callable[[], bool], what: str) -> None:
    """Wait until ``done()``, at most WAIT seconds."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < WAIT, f"not within {WAIT} s: {what}"
        time.sleep(0.1)
    timed(what, started)


async def ended_when_idle(superuser_url: str, seconds: float) -> bool:
    """Whether the server ends an ordinary session left idle for ``seconds``."""
    conn = await asyncpg.connect(superuser_url)
    try:
        await asyncio.sleep(seconds)
        try:
            await conn.fetchval("SELECT 1")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError):
            return True
        return False
    finally:
        conn.terminate()


def sweep_until_dropped(room: Room, name: str, whose: str) -> str:
    """Run `coursedb start` (a sweep) until it drops ``name``; return what it printed."""
    started = time.monotonic()
    while True:
        result = cli(room.home, "start", **room.env)
        assert result.returncode == 0, result.stderr
        if name not in run(database_names(admin_url_of(room))):
            timed(f"{whose} database swept (grace {GRACE} s)", started)
            return result.stdout
        assert time.monotonic() - started < GRACE + WAIT, f"{name} was never swept: {result.stdout}"
        time.sleep(0.5)


# --- sessions cut over and over ------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["terminate", "idle_session_timeout"])
@pytest.mark.parametrize("where", SERVERS)
def test_cut_keeper_sessions_lose_no_row_and_a_killed_owner_is_still_swept(where, fault):
    """Three owners hold committed rows while their keeper sessions are terminated about every 0.7 s
    until each was cut 5 times (or, the server ending any session idle for 1 s, for 3 s, the three
    owners started after that setting), and other owners start in a loop, each start sweeping with
    a 4 s grace. Every row survives and every owner keeps its database; then one owner is SIGKILLed,
    and its database is swept once its lock has been free for the grace."""
    with server(where) as room:
        if fault == "idle_session_timeout":  # before the owners start: their sessions begin under it
            run(fetch(room.superuser_url, f"ALTER SYSTEM SET idle_session_timeout = '{IDLE_TIMEOUT}s'"))
            run(fetch(room.superuser_url, "SELECT pg_reload_conf()"))
        holders = [Asker(room.home, **room.env) for _ in range(3)]
        try:
            urls = [h.ask(f"commit holder{i}")["url"] for i, h in enumerate(holders)]
            mine = [h.proc.pid for h in holders]
            before = run(keeper_sessions(room.superuser_url))
            cutter = Cutter(room.superuser_url) if fault == "terminate" else None
            starters = [Starters(room.home, room.env) for _ in range(2)]
            for thread in [*starters, *([cutter] if cutter else [])]:
                thread.start()
            if cutter is not None:
                wait_for(
                    lambda: cutter.error is not None or min(cutter.cuts[pid] for pid in mine) >= CUTS_EACH,
                    f"each keeper session cut {CUTS_EACH} times",
                )
            else:  # the setting is in force: an ordinary idle session is ended
                assert run(ended_when_idle(room.superuser_url, IDLE_TIMEOUTS * IDLE_TIMEOUT))
            wait_for(lambda: sum(s.started for s in starters) >= STARTS, f"{STARTS} owners started")
            for thread in [*starters, *([cutter] if cutter else [])]:
                thread.done.set()
                thread.join(WAIT)
                assert not thread.is_alive()
            if fault == "idle_session_timeout":
                run(fetch(room.superuser_url, "ALTER SYSTEM RESET idle_session_timeout"))
                run(fetch(room.superuser_url, "SELECT pg_reload_conf()"))
            failures = [f for s in starters for f in s.failures]
            print(f"{fault} on {where}: cuts by owner {dict(cutter.cuts) if cutter else {}}, "
                  f"{sum(s.started for s in starters)} owners started, failures: {failures}")  # fmt: skip
            assert cutter is None or cutter.error is None, cutter.error
            started = time.monotonic()
            for url in urls:
                wait_until_locked(admin_url_of(room), dbname(url), WAIT)
            timed("all three locks held again", started)
            after = run(keeper_sessions(room.superuser_url))
            if cutter is not None:
                assert all(after[pid] != before[pid] for pid in mine), "a keeper session was never cut"
            else:  # immune: the server never ended them
                assert [after[pid] for pid in mine] == [before[pid] for pid in mine]
            for i, (holder, url) in enumerate(zip(holders, urls, strict=True)):
                assert holder.ask() == {"url": url}  # the same database, no word of a loss
                assert rows_of(url) == [f"holder{i}@example.com"]
            # A really dead owner is still found out.
            victim = holders.pop(0)
            victim.end(kill=True)
            out = sweep_until_dropped(room, dbname(urls[0]), "the killed owner's")
            assert f"whose lock stayed free for {GRACE} s: {dbname(urls[0])} (lock free for " in out, out
            names_now = run(database_names(admin_url_of(room)))
            assert {dbname(u) for u in urls[1:]} <= names_now
        finally:
            for holder in holders:
                holder.end()


def test_a_sweep_right_after_a_cut_drops_nothing(where="embedded"):
    """A sweep 0-0.1 s after an owner's session is cut, before it is back (the owner is held
    with SIGSTOP for the moment, so the sweep surely finds the lock free): 9 trials. The sweep
    times the free lock; the owner comes back and clears the mark; a sweep after the grace finds
    the lock held. Nothing is dropped."""
    with server(where) as room:
        holder = Asker(room.home, **room.env)
        try:
            url = holder.ask("commit holder")["url"]
            name = dbname(url)

            async def cut_then_sweep(delay: float) -> databases.Sweep:
                keeper = (await keeper_sessions(room.superuser_url))[holder.proc.pid]
                async with databases.admin_connection(room.superuser_url) as conn:
                    assert await conn.fetchval("SELECT pg_terminate_backend($1, $2)", keeper, WAIT * 1000)
                    await asyncio.sleep(delay)
                    return await databases.drop_stale(conn, GRACE)

            for trial in range(9):
                os.kill(holder.proc.pid, signal.SIGSTOP)
                try:
                    sweep = run(cut_then_sweep(trial * 0.0125))
                finally:
                    os.kill(holder.proc.pid, signal.SIGCONT)
                assert name not in sweep.dropped and name in sweep.waiting, sweep
                started = time.monotonic()
                wait_until_locked(room.superuser_url, name, WAIT)
                timed(f"trial {trial}: the owner's lock back", started)
                listed = {d.name: d for d in run(owned(room.superuser_url))}
                assert listed[name].free_for is None  # the owner cleared the sweep's mark
            time.sleep(GRACE)
            result = cli(room.home, "start", **room.env)
            assert "dropped" not in result.stdout, result.stdout
            assert holder.ask() == {"url": url}
            assert rows_of(url) == ["holder@example.com"]
        finally:
            holder.end()


# --- the server killed: a slow crash recovery, suspended owners ---------------------------------


def stop_recovery(room: Room) -> psutil.Process:
    """Find the process that replays the WAL after the crash and suspend it: a postmaster's
    startup process, or (the embedded backend) the single-user server it runs before listening."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            try:
                if cmdline[:1] == ["postgres: startup"] or " ".join(cmdline).startswith("postgres: startup"):
                    if str(room.data) not in proc.parent().cmdline():
                        continue
                elif "--single" not in cmdline or str(room.data) not in cmdline:
                    continue
                proc.suspend()
                return proc
            except psutil.Error:
                continue
        time.sleep(0.001)
    raise AssertionError("no crash recovery was seen")


@pytest.mark.parametrize("where", SERVERS)
def test_a_crash_recovery_longer_than_the_old_restart_grace_drops_nothing(where):
    """Three owners hold committed rows; ~150 MB of WAL wait for redo when every server process is
    SIGKILLed; the next start's crash recovery is suspended for 7 s (on PostgreSQL 15 the
    postmaster's start time, from which the old 5 s grace was counted, comes before it). From
    the moment the server takes connections, sweeps run every 50 ms, and `coursedb start`s after
    them for longer than the grace: they drop nothing, and every owner comes back to its database."""
    with server(where) as room:
        holders = [Asker(room.home, **room.env) for _ in range(3)]
        try:
            urls = [h.ask(f"commit holder{i}")["url"] for i, h in enumerate(holders)]
            run(fetch(room.superuser_url, "CHECKPOINT"))
            ballast = "CREATE TABLE ballast AS SELECT repeat('x', 100) AS pad FROM generate_series(1, 1000000)"
            run(fetch(room.superuser_url, ballast))
            kill_server(room)
            started = time.monotonic()
            start = restart_server(room)
            recovery = stop_recovery(room)
            sweeper = Sweeper(admin_url_of(room))
            sweeper.start()
            time.sleep(7)
            recovery.resume()
            out, err = start.communicate(timeout=WAIT)
            timed("the start, crash recovery included", started)
            assert start.returncode == 0, err
            assert "dropped" not in out, out
            assert "database system was not properly shut down; automatic recovery in progress" in room.log.read_text()
            sweeping = time.monotonic()
            while time.monotonic() - sweeping < GRACE + 2:
                result = cli(room.home, "start", **room.env)
                assert "dropped" not in result.stdout, result.stdout
                time.sleep(0.5)
            sweeper.done.set()
            sweeper.join(WAIT)
            print(f"{sweeper.sweeps} sweeps from the end of the recovery on")
            assert sweeper.sweeps >= 10 and not {dbname(url) for url in urls} & set(sweeper.dropped), sweeper.dropped
            for i, (holder, url) in enumerate(zip(holders, urls, strict=True)):
                assert holder.ask() == {"url": url}
                assert rows_of(url) == [f"holder{i}@example.com"]
        finally:
            for holder in holders:
                holder.end()


@pytest.mark.parametrize("where", SERVERS)
def test_an_owner_suspended_across_a_restart_keeps_its_database_within_the_grace_and_hears_after(where):
    """Two owners are suspended (SIGSTOP) and the server restarts under them. Sweeps run. One
    resumes within the grace: its database, its rows, its session are back, and no later sweep
    drops it. The other resumes after the grace: its database was dropped, and its next
    database_url() says so in one sentence (what it saw: its session lost, the restart), then
    the one after gives it a new, empty database."""
    with server(where) as room:
        short, long = Asker(room.home, **room.env), Asker(room.home, **room.env)
        try:
            short_url = short.ask("commit short")["url"]
            long_url = long.ask("commit long")["url"]
            run(fetch(room.superuser_url, "CHECKPOINT"))
            for owner in (short, long):
                os.kill(owner.proc.pid, signal.SIGSTOP)
            restarted = time.monotonic()
            kill_server(room)
            restart = restart_server(room)
            _, err = restart.communicate(timeout=WAIT)
            assert restart.returncode == 0, err
            first = cli(room.home, "start", **room.env)  # a sweep
            assert first.returncode == 0, first.stderr
            assert "dropped" not in first.stdout and "kept 2 database(s) whose lock is free" in first.stdout
            time.sleep(GRACE / 2)
            os.kill(short.proc.pid, signal.SIGCONT)
            wait_until_locked(admin_url_of(room), dbname(short_url), WAIT)
            timed("the short suspension, restart included, until its lock was back", restarted)
            started = time.monotonic()
            out = sweep_until_dropped(room, dbname(long_url), "the long-suspended owner's")
            assert dbname(short_url) not in out
            assert f"{dbname(long_url)} (lock free for " in out
            os.kill(long.proc.pid, signal.SIGCONT)
            timed("the long suspension", started)
            assert short.ask() == {"url": short_url}
            assert rows_of(short_url) == ["short@example.com"]
            said = long.ask()
            assert set(said) == {"error"}, said
            sentence = said["error"]
            print(f"the owner was told: {sentence}")
            assert sentence.startswith(f"Your database {dbname(long_url)} is gone, and the rows in it with it: ")
            assert "your session ended when the server restarted at " in sentence
            assert ", and came back at " in sentence
            assert sentence.endswith("run this again for a new, empty database.")
            assert sentence.count(". ") == 0 and "\n" not in sentence  # one sentence
            again = long.ask()
            assert "url" in again and again["url"] != long_url
            assert rows_of(again["url"]) == []
        finally:
            short.end()
            long.end()


# --- a cut at every statement -------------------------------------------------------------------


class Cuts:
    """Every connection coursedb opens in this process (on its keeper's thread: the keeper's session
    and the admin sessions a take opens) counts its statements while armed; the one numbered
    ``at`` finds its session cut (the socket closed under it), and at that instant another
    owner's session is cut and a sweep runs, as if another kernel started just then."""

    def __init__(self, room: Room, other_pid: int) -> None:
        self.room, self.other_pid = room, other_pid
        self.connect = asyncpg.connect  # the real one
        self.at = 0
        self.count = 0
        self.hit = False
        self.swept: list[databases.Sweep] = []

    def arm(self, at: int) -> None:
        self.at, self.count, self.hit = at, 0, False

    def disarm(self) -> None:
        self.at = 0

    async def before_statement(self, conn: asyncpg.Connection) -> None:
        if not self.at or self.hit:
            return
        self.count += 1
        if self.count != self.at:
            return
        self.hit = True
        conn.terminate()
        other = await self.connect(self.room.superuser_url)
        try:
            for owner, pid in (await keeper_sessions(self.room.superuser_url)).items():
                if owner == self.other_pid:
                    await other.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
            self.swept.append(await databases.drop_stale(other, GRACE))
        finally:
            await other.close()
        raise asyncpg.ConnectionDoesNotExistError("the test cut this session")


@pytest.fixture
def cuts(monkeypatch):
    """Cuts, wired into asyncpg.connect for this (test) process: coursedb's every connection."""
    made: list[Cuts] = []

    def install(room: Room, other_pid: int) -> Cuts:
        found = Cuts(room, other_pid)

        class Faulty(asyncpg.Connection):
            async def execute(self, *args, **kwargs):
                await found.before_statement(self)
                return await super().execute(*args, **kwargs)

            async def fetch(self, *args, **kwargs):
                await found.before_statement(self)
                return await super().fetch(*args, **kwargs)

            async def fetchval(self, *args, **kwargs):
                await found.before_statement(self)
                return await super().fetchval(*args, **kwargs)

            async def fetchrow(self, *args, **kwargs):
                await found.before_statement(self)
                return await super().fetchrow(*args, **kwargs)

        def connect(*args, **kwargs):
            if threading.current_thread().name != "coursedb-keeper":
                return found.connect(*args, **kwargs)  # the test's own connections: never cut
            return found.connect(*args, connection_class=Faulty, **kwargs)

        monkeypatch.setattr(asyncpg, "connect", connect)
        made.append(found)
        return found

    yield install
    for found in made:
        found.disarm()


def test_a_cut_at_every_statement_of_taking_or_coming_back_loses_nothing(cuts):
    """This test process is an owner (A) beside another (B, with a committed row). First, A takes
    a new database again and again, its session (or an admin session of its) cut at the 1st,
    2nd, 3rd... statement of the whole take: reserving the lock, the sweep, the template, the
    clone, the comment. Then A holds a database with a committed row and its session is cut
    from outside; the way back is cut at its 1st, 2nd, 3rd... statement. At each cut, B's session
    is cut too and a sweep runs. database_url() gives a working database (the same one, on the
    way back) or one sentence; B's database and row, and A's, survive; no mark is left; and what
    a cut take left half made is unlocked, so sweeps drop it."""
    import coursedb

    with server("embedded") as room:
        other = Asker(room.home, **room.env)
        settings = settings_for(room.home, **room.env)
        try:
            other_url = other.ask("commit other")["url"]
            faults = cuts(room, other.proc.pid)
            outcomes = {"url": 0, "sentence": 0}
            at = 0
            while True:  # the take, cut at statement 1, 2, 3...
                at += 1
                coursedb._drop_own(str(room.home))
                faults.arm(at)
                try:
                    url = coursedb.database_url(settings)
                    outcomes["url"] += 1
                except coursedb.CourseDBError as exc:
                    assert "\n" not in str(exc) and not str(exc).rstrip().endswith(":"), exc
                    outcomes["sentence"] += 1
                    url = None
                faults.disarm()
                if url is not None:
                    wait_until_locked(room.superuser_url, dbname(url), WAIT)
                    assert rows_of(url) == []
                wait_until_locked(room.superuser_url, dbname(other_url), WAIT)
                if not faults.hit:
                    break
            print(f"a take has {at - 1} statements; cut at each: {outcomes}")
            assert at > 10 and outcomes["url"] >= 1

            mine = coursedb.database_url(settings)
            run(fetch(mine, "INSERT INTO users (email, name) VALUES ('mine@example.com', 'Mine')"))
            at = 0
            while True:  # the way back, cut at statement 1, 2, 3...
                at += 1
                keeper = run(keeper_sessions(room.superuser_url))[os.getpid()]
                faults.arm(at)
                run(fetch(room.superuser_url, "SELECT pg_terminate_backend($1, 5000)", keeper))
                wait_until_locked(room.superuser_url, dbname(mine), WAIT)  # the keeper comes back by itself
                assert coursedb.database_url(settings) == mine
                faults.disarm()
                if not faults.hit:
                    break
            print(f"the way back has {at - 1} statements before the locks are back; "
                  f"the sweeps at the cuts marked {sum(len(s.waiting) for s in faults.swept)} free locks")  # fmt: skip
            assert at > 3
            listed = {d.name: d for d in run(owned(room.superuser_url))}
            for name in (dbname(mine), dbname(other_url)):
                assert listed[name].locked and listed[name].free_for is None, listed[name]
            assert rows_of(mine) == ["mine@example.com"] and rows_of(other_url) == ["other@example.com"]
            assert other.ask() == {"url": other_url}

            # Whatever a cut take left half made holds no lock: a sweep drops it (here at once).
            async def sweep_now() -> databases.Sweep:
                async with databases.admin_connection(room.superuser_url) as conn:
                    return await databases.drop_stale(conn, grace=0)

            run(sweep_now())
            left = {d.name for d in run(owned(room.superuser_url)) if d.kind == "owner"}
            assert left == {dbname(mine), dbname(other_url)}, left
        finally:
            coursedb._drop_own(str(room.home))
            other.end()
