"""Killed kernels, a killed server, stale state, and broken data directories.

The "kernels" are OWNER processes (tests/helpers): each takes its own database like a
notebook kernel does and leaves a transaction open on it. The server is a private one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import asyncpg
import psutil
import pytest

import coursedb
from coursedb import databases, server
from coursedb.backends import embedded
from tests.helpers import (
    assert_one_line_error,
    cli,
    database_names,
    dbname,
    end_owner,
    fetch,
    leftovers,
    postmasters,
    run,
    settings_for,
    start_owner,
    tmpfs,
)

pytestmark = pytest.mark.timeout(60)


def only_postmaster(home: Path) -> psutil.Process:
    found = postmasters(home)
    assert len(found) == 1, found
    return found[0]


def wait_until_gone(home: Path) -> None:
    """SIGKILL is delivered asynchronously: wait until the postmaster is really dead."""
    deadline = time.monotonic() + 10
    while postmasters(home):
        assert time.monotonic() < deadline, "the killed postmaster did not go away"
        time.sleep(0.01)


# --- a kernel killed mid-transaction ----------------------------------------------------------


def test_kernel_killed_mid_transaction_leaves_server_and_others_alone(srv):
    server_pid = only_postmaster(srv.home).pid
    bystander, bystander_url = start_owner(srv.home)
    victim, victim_url = start_owner(srv.home)
    try:
        end_owner(victim, kill=True)  # SIGKILL while its INSERT is uncommitted
        assert only_postmaster(srv.home).pid == server_pid  # the server stays up
        # The bystander's database, its open transaction and its connection are untouched.
        rows = run(fetch(srv.admin_url, "SELECT state FROM pg_stat_activity WHERE datname = $1", dbname(bystander_url)))
        assert [r["state"] for r in rows] == ["idle in transaction"]
        # The next start times the free lock; once it has been free for the grace (0 s here), a
        # start drops the dead owner's database and says what it saw.
        result = cli(srv.home, "start")
        assert result.returncode == 0, result.stderr
        kept = "kept 1 database(s) whose lock is free, for their owners to come back"
        kept += " (a sweep drops one once free for 600 s)"
        assert f"{kept}: {dbname(victim_url)} (lock free for 0 s)" in result.stdout
        result = cli(srv.home, "start", COURSEDB_SWEEP_GRACE="0")
        assert result.returncode == 0, result.stderr
        dropped = f"dropped 1 database(s) whose lock stayed free for 0 s: {dbname(victim_url)} (lock free for "
        assert dropped in result.stdout
        names = run(database_names(srv.admin_url))
        assert dbname(victim_url) not in names
        assert dbname(bystander_url) in names
        assert bystander.poll() is None
    finally:
        end_owner(bystander)
    assert bystander.returncode == 0, bystander.stderr.read() if bystander.stderr else ""


# --- the server killed under connected clients --------------------------------------------------


async def test_server_killed_under_a_pool_restarts_on_next_use_and_the_pool_recovers(srv):
    """What a notebook sees: the next query fails with one of asyncpg's connection errors; the
    next database_url() (every notebook's setup) restarts the server and returns the same
    database; after ``pool.expire_connections()`` the same pool works again at once (without it,
    each dead pooled connection fails once more before asyncpg replaces it)."""
    settings = settings_for(srv.home)
    url = coursedb.database_url(settings)
    pool = await asyncpg.create_pool(url, min_size=2, max_size=2, timeout=10)
    try:
        await pool.execute("INSERT INTO users (email, name) VALUES ('kept@example.com', 'Kept')")
        os.kill(only_postmaster(srv.home).pid, signal.SIGKILL)
        wait_until_gone(srv.home)
        # Which of asyncpg's errors depends on whether the connection noticed the loss before
        # the query: ConnectionDoesNotExistError("connection was closed in the middle of
        # operation") or, less helpfully, InternalClientError("cannot switch to state 12;
        # another operation (2) is in progress").
        with pytest.raises((asyncpg.ConnectionDoesNotExistError, asyncpg.InternalClientError)):
            await pool.fetchval("SELECT 1")
        assert coursedb.status(settings).running is False
        assert coursedb.database_url(settings) == url  # restarted; the database survived
        await pool.expire_connections()
        assert await pool.fetchval("SELECT email FROM users") == "kept@example.com"
        assert len(postmasters(srv.home)) == 1
    finally:
        await pool.close()
        coursedb._drop_own(str(srv.home))  # this test process is an owner no longer


async def test_every_acknowledged_commit_survives_killing_every_server_process(srv):
    """A connection commits one row after another; every server process is SIGKILLed in the middle
    of it. After the restart, every commit the server acknowledged is there (synchronous_commit:
    a commit is in the WAL before it is acknowledged; with it off, 19 of 22,025 were lost)."""
    settings = settings_for(srv.home)
    url = coursedb.database_url(settings)
    conn = await asyncpg.connect(url)
    acknowledged: list[int] = []

    async def commit_for_ever() -> None:
        while True:
            await conn.execute("INSERT INTO events (kind) VALUES ($1)", f"commit {len(acknowledged)}")
            acknowledged.append(len(acknowledged))

    writer = asyncio.create_task(commit_for_ever())
    try:
        while len(acknowledged) < 2000:
            await asyncio.sleep(0.01)
        postmaster = only_postmaster(srv.home)
        for proc in [*postmaster.children(), postmaster]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        wait_until_gone(srv.home)
        with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
            await asyncio.wait_for(writer, 30)
        assert coursedb.database_url(settings) == url  # restarted, after crash recovery
        kept = {r["kind"] for r in await fetch(url, "SELECT kind FROM events")}
        lost = [i for i in acknowledged if f"commit {i}" not in kept]
        print(f"{len(acknowledged)} commits acknowledged before the kill, {len(lost)} lost")
        assert lost == []
    finally:
        writer.cancel()
        conn.terminate()
        coursedb._drop_own(str(srv.home))


def test_server_killed_then_cli_start_recovers_even_if_the_old_pid_lingers(srv):
    """A SIGKILLed postmaster may stay a zombie (a container without an init reaps nothing):
    its PID still 'exists', in postmaster.pid and in the socket's lock file. coursedb must
    see it is dead and start a new server anyway."""
    old = only_postmaster(srv.home)
    old.kill()
    wait_until_gone(srv.home)
    assert "No coursedb server is running" in cli(srv.home, "status").stdout
    result = cli(srv.home, "start")
    assert result.returncode == 0, result.stderr
    assert only_postmaster(srv.home).pid != old.pid


# --- stale state -----------------------------------------------------------------------------------


@pytest.fixture
def sleeper():
    """An unrelated live process whose PID we plant in coursedb's files."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def test_a_pid_reused_by_another_process_is_never_attached_to(srv, sleeper):
    embedded.kill(settings_for(srv.home))
    # postmaster.pid and state.json now name a live process that is not PostgreSQL, with its
    # real start time: only the process name can tell. coursedb must not adopt or kill it.
    started = int(psutil.Process(sleeper.pid).create_time())
    pidfile = [str(sleeper.pid), str(srv.home / "data"), str(started), "5432", str(srv.home / "run"), "", "0 0"]
    (srv.home / "data" / "postmaster.pid").write_text("\n".join(pidfile) + "\n")
    state = json.loads((srv.home / "state.json").read_text())
    (srv.home / "state.json").write_text(json.dumps(dict(state, pid=sleeper.pid)))
    settings = settings_for(srv.home)
    assert server.status(settings).running is False
    server.ensure(settings)
    real = only_postmaster(srv.home)
    assert real.pid != sleeper.pid
    assert json.loads((srv.home / "state.json").read_text())["pid"] == real.pid
    assert sleeper.poll() is None  # never signalled


@pytest.mark.parametrize("garbage", ["", "{not json", '{"backend": "embedded", "admin_url": "x"}', "[1, 2]"])
def test_a_torn_or_garbled_state_file_is_rewritten(srv, garbage):
    (srv.home / "state.json").write_text(garbage)
    server.ensure(settings_for(srv.home))
    assert json.loads((srv.home / "state.json").read_text())["pid"] == only_postmaster(srv.home).pid


def test_a_deleted_pid_file_does_not_leave_a_second_server(srv):
    """postmaster.pid removed under a running server (a cleanup script, a learner):
    the orphaned server is found by its data directory and replaced, never doubled."""
    old = only_postmaster(srv.home)
    (srv.home / "data" / "postmaster.pid").unlink()
    server.ensure(settings_for(srv.home))
    assert only_postmaster(srv.home).pid != old.pid


def test_a_leftover_data_dir_without_state_is_reused_without_dead_databases(srv):
    owner, url = start_owner(srv.home)
    end_owner(owner, kill=True)
    embedded.kill(settings_for(srv.home))
    (srv.home / "state.json").unlink()
    state = server.ensure(settings_for(srv.home))  # restarts on the old data
    # A sweep times the free lock from the server's new life on; a database whose lock stayed
    # free for the grace (0 s here) goes.
    assert server.sweep(state, grace=600).waiting == [dbname(url)]
    assert server.sweep(state, grace=0).dropped == [dbname(url)]
    names = run(database_names(srv.admin_url))
    assert databases.template_name() in names
    assert dbname(url) not in names


def test_a_read_only_data_dir_is_named_with_the_log(srv):
    """Simulated by taking the write bit away from the data directory's owner. As root the
    server runs as the 'coursedb' user, for whom the bit counts (root would ignore it)."""
    embedded.kill(settings_for(srv.home))
    (srv.home / "data").chmod(0o500)
    try:
        result = cli(srv.home, "start")
    finally:
        (srv.home / "data").chmod(0o700)
    assert_one_line_error(result, "did not start", "Permission denied", f"Full log: {srv.home}/server.log")
    assert not postmasters(srv.home)
    server.ensure(settings_for(srv.home))
    assert len(postmasters(srv.home)) == 1


def test_a_data_dir_deleted_under_a_running_server_is_rebuilt(srv):
    """The data directory removed while the server runs, then half re-created, as an initdb
    interrupted at the wrong moment would leave it: the orphaned server is ended and a fresh
    cluster is made, never a second server next to the first."""
    old = only_postmaster(srv.home)
    shutil.rmtree(srv.home / "data")  # the state file still says 'running'
    (srv.home / "data").mkdir(mode=0o700)
    (srv.home / "data" / "global").mkdir()  # no PG_VERSION: not a cluster
    owner, url = start_owner(srv.home)
    try:
        assert only_postmaster(srv.home).pid != old.pid
        assert (srv.home / "data" / "PG_VERSION").exists()
        assert run(fetch(url, "SELECT count(*) AS n FROM users"))[0]["n"] == 0
    finally:
        end_owner(owner)


# --- a full disk ----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(home):
    """``home`` on a 100 MB tmpfs: room for the binaries and one cluster, little more."""
    if os.geteuid() != 0:
        pytest.skip("simulating a full disk needs root, to mount a small tmpfs")
    with tmpfs(home, "size=100m,mode=0711"):
        try:
            yield home
        finally:
            cli(home, "stop")


def fill(disk: Path) -> None:
    """Fill the filesystem to the last block."""
    with open(disk / "ballast", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass  # ENOSPC: the disk is full, which is the point


def test_a_full_disk_is_one_sentence_before_and_after_start(small_disk):
    """Simulated with a 100 MB tmpfs as COURSEDB_HOME, filled to the last block by a ballast file."""
    fill(small_disk)
    assert_one_line_error(cli(small_disk, "start"), "No space left on device")
    assert not postmasters(small_disk)
    (small_disk / "ballast").unlink()
    settings = settings_for(small_disk)
    assert cli(small_disk, "start").returncode == 0  # room again: it starts
    fill(small_disk)  # and now the disk fills up under the running server
    with pytest.raises(coursedb.CourseDBError, match=r"creating your database on it failed: .*No space left on device"):
        coursedb.database_url(settings)
    (small_disk / "ballast").unlink()
    url = coursedb.database_url(settings)  # room again: works
    assert run(fetch(url, "SELECT count(*) AS n FROM users"))[0]["n"] == 0
    coursedb.stop(settings)


# --- last: stops the module's server --------------------------------------------------------------


def test_stop_with_the_pid_file_gone_still_stops_everything(srv):
    """The server is found by its data directory, not by its PID file."""
    (srv.home / "data" / "postmaster.pid").unlink()
    result = cli(srv.home, "stop")
    assert result.returncode == 0, result.stderr
    assert leftovers(srv.home) == []
