"""Liveness the server vouches for: clock steps, other machines, one role per learner.

An owner's database lives exactly while the owner's session holds its advisory lock. These
tests break what the old liveness (PIDs, process start times, host names) relied on:

- clock steps are simulated the way they were found: a private mount namespace
  (``unshare --mount``) in which a copy of /proc/stat with a shifted ``btime`` is bind-mounted
  over the real one. Everything computed from process start times (psutil, the embedded
  server's PID file check) sees the step; the wall clock itself is not moved (that would need
  CAP_SYS_TIME for the whole machine).
- another machine with the same host name and uid is a separate PID namespace
  (``unshare --pid --fork --mount-proc``) with a home of its own, on the same COURSEDB_URL.

Every test runs on private servers and is bounded by pytest-timeout.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import asyncpg
import psutil
import pytest

from coursedb import databases, platform
from tests.helpers import (
    PYTHON,
    ROOT,
    cli,
    database_names,
    dbname,
    end_owner,
    env_for,
    fetch,
    make_home,
    owned,
    postmasters,
    run,
    start_owner,
    tcp_server,
    wait_until_locked,
)

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("unshare") is None or not platform.is_root(), reason="needs unshare as root"),
]


def in_namespace(kind: str, args: list[str], **popen) -> subprocess.Popen:
    """Start ``args`` in a new namespace: 'clock:<seconds>' (shifted btime) or 'machine' (PID namespace)."""
    if kind.startswith("clock:"):
        shift = int(kind.split(":", 1)[1])
        script = (
            'set -e; fake=$(mktemp /tmp/cdbstat.XXXXXX); awk -v s="$0" \'$1 == "btime" {$2 = $2 + s} {print}\''
            ' /proc/stat > "$fake"; mount --bind "$fake" /proc/stat; rm "$fake"; exec "$@"'
        )
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(shift), *args]
    else:
        cmd = ["unshare", "--pid", "--fork", "--mount-proc", *args]
    return subprocess.Popen(cmd, **popen)


def run_in(kind: str, home: Path, args: list[str], **extra: str | None) -> subprocess.CompletedProcess:
    proc = in_namespace(
        kind, args, env=env_for(home, **extra), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def owner_in(kind: str, home: Path, **extra: str | None) -> tuple[subprocess.Popen, str]:
    """An OWNER process (tests/helpers) started inside a namespace; it and its database's DSN."""
    return start_owner(home, launch=functools.partial(in_namespace, kind), **extra)


async def owner_still_works(url: str) -> None:
    """The owner's open transaction is there, and its database answers."""
    rows = await fetch(
        url, "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert [r["state"] for r in rows] == ["idle in transaction"]


# --- clock steps ------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def owners(srv):
    """Three owners for a class of tests: started once, ended after its last test."""
    started = [start_owner(srv.home) for _ in range(3)]
    yield started
    for proc, _ in started:
        end_owner(proc)


class TestClockSteps:
    """The same three owners hold their databases through every step: started once, not once per step."""

    @pytest.mark.parametrize("step", [1, -1, 10, -10, 3600, -3600])
    def test_a_clock_step_drops_no_live_database_and_stops_no_server(self, srv, owners, step):
        """Three owners hold databases; in a namespace whose clock (btime) is stepped, the commands
        that used to judge liveness by start times run: status, start, and a fourth owner taking a
        database. None of the three databases is dropped, the server keeps its PID, status says it
        runs and calls all three live."""
        server_pid = [p.pid for p in postmasters(srv.home)]
        # The simulation is real: inside, process start times moved by the step.
        probe = f"import psutil; print(psutil.Process({owners[0][0].pid}).create_time())"
        inside = float(run_in(f"clock:{step}", srv.home, [PYTHON, "-c", probe]).stdout)
        assert inside - psutil.Process(owners[0][0].pid).create_time() == pytest.approx(step, abs=0.1)

        status = run_in(f"clock:{step}", srv.home, [PYTHON, "-m", "coursedb", "status"])
        assert status.returncode == 0, status.stderr
        assert "No coursedb server is running" not in status.stdout
        for _, url in owners:
            line = next(ln for ln in status.stdout.splitlines() if dbname(url) in ln)
            assert "live (its session holds the lock)" in line, status.stdout
        started = run_in(f"clock:{step}", srv.home, [PYTHON, "-m", "coursedb", "start"])
        assert started.returncode == 0, started.stderr
        assert "dropped" not in started.stdout, started.stdout
        fourth, fourth_url = owner_in(f"clock:{step}", srv.home)
        end_owner(fourth)

        names = run(database_names(srv.admin_url))
        assert {dbname(url) for _, url in owners} <= names
        assert dbname(fourth_url) not in names  # it exited normally: dropped
        assert [p.pid for p in postmasters(srv.home)] == server_pid
        for proc, url in owners:
            assert proc.poll() is None
            run(owner_still_works(url))


def test_a_sigkilled_owners_database_is_swept_by_the_next_start_the_others_stay(srv):
    owners = [start_owner(srv.home) for _ in range(3)]
    try:
        victim, victim_url = owners.pop(1)
        end_owner(victim, kill=True)
        result = run_in("clock:3600", srv.home, [PYTHON, "-m", "coursedb", "start"], COURSEDB_SWEEP_GRACE="0")
        assert result.returncode == 0, result.stderr
        assert f"dropped 1 database(s) whose lock stayed free for 0 s: {dbname(victim_url)}" in result.stdout
        names = run(database_names(srv.admin_url))
        assert dbname(victim_url) not in names
        assert {dbname(url) for _, url in owners} <= names
    finally:
        for proc, _ in owners:
            end_owner(proc)


# --- a server in COURSEDB_URL shared by machines and roles -------------------------------------


@pytest.fixture(scope="module")
def room():
    """A private embedded server listening on TCP: the 'room server' behind COURSEDB_URL."""
    with tcp_server() as server:
        yield server


@pytest.fixture
def machines():
    """Two 'machines': each a home of its own (a laptop's /tmp), stopped and deleted afterwards."""
    homes = [make_home(), make_home()]
    yield homes
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)


def test_two_machines_on_one_url_never_touch_each_others_live_database(room, machines):
    """Same host name, same uid, separate PID namespaces: each side's start and stop leaves the
    other's live database alone (stop drops only what no session vouches for)."""
    here, there = machines
    extra = {"COURSEDB_BACKEND": "url", "COURSEDB_URL": room.url}
    mine, mine_url = start_owner(here, **extra)
    theirs, theirs_url = owner_in("machine", there, **extra)
    try:
        for side, home in (("here", here), ("machine", there)):
            for command in ("start", "stop", "start"):
                if side == "here":
                    result = cli(home, command, **extra)
                else:
                    result = run_in("machine", home, [PYTHON, "-m", "coursedb", command], **extra)
                assert result.returncode == 0, (side, command, result.stderr)
                assert "stopped the server" not in result.stdout
                names = run(database_names(room.admin_url))
                assert {dbname(mine_url), dbname(theirs_url)} <= names, (side, command, result.stdout)
        run(owner_still_works(mine_url))
        run(owner_still_works(theirs_url))
    finally:
        end_owner(mine)
        end_owner(theirs)
    names = run(database_names(room.admin_url))
    assert dbname(mine_url) not in names and dbname(theirs_url) not in names


@pytest.fixture
def learners(room):
    """One role per learner, each allowed to create databases but not a superuser."""
    roles = ["learner_a", "learner_b"]

    async def create() -> None:
        conn = await asyncpg.connect(room.admin_url)
        try:
            for role in roles:
                await conn.execute(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{role}-pw'")
            await conn.execute("CREATE DATABASE coursedb_hand_made")  # e.g. a learner's copy
        finally:
            await conn.close()

    async def drop() -> None:
        async with databases.admin_connection(room.admin_url) as conn:
            for row in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'coursedb\\_%' AND datdba <> 10"
            ):
                await databases.drop_database(conn, row["datname"])
            await conn.execute("DROP DATABASE IF EXISTS coursedb_hand_made")
            for role in roles:
                await conn.execute(f"DROP ROLE IF EXISTS {role}")

    run(create())
    yield {role: f"postgresql://{role}:{role}-pw@127.0.0.1:{room.port}/postgres" for role in roles}
    run(drop())


def test_a_killed_learners_database_another_role_may_not_drop_stops_nobody(room, learners, machines):
    a_home, b_home = machines
    a = {"COURSEDB_BACKEND": "url", "COURSEDB_URL": learners["learner_a"]}
    b = {"COURSEDB_BACKEND": "url", "COURSEDB_URL": learners["learner_b"]}
    victim, victim_url = start_owner(a_home, **a)
    end_owner(victim, kill=True)  # learner_a's kernel dies: its database is stale, and learner_a's
    try:
        started = cli(b_home, "start", **b)
        assert started.returncode == 0, started.stderr
        assert f"left database {dbname(victim_url)}: owned by role learner_a" in started.stdout
        owner, url = start_owner(b_home, **b)  # learner_b's kernel starts anyway
        try:
            run(owner_still_works(url))
            status = cli(b_home, "status", **b).stdout
            line = next(ln for ln in status.splitlines() if dbname(victim_url) in ln)
            assert "lock free" in line and "owned by role learner_a, not ours to drop" in line
            assert "coursedb_hand_made" in status and "not made by coursedb" in status
        finally:
            end_owner(owner)
        # learner_a comes back: its own start sweeps its own stale database.
        again = cli(a_home, "start", **a, COURSEDB_SWEEP_GRACE="0")
        assert f"dropped 1 database(s) whose lock stayed free for 0 s: {dbname(victim_url)}" in again.stdout
        assert "coursedb_hand_made" in run(database_names(room.admin_url))
    finally:
        for home, extra in ((a_home, a), (b_home, b)):
            cli(home, "stop", **extra)


# --- the template follows the migrations ------------------------------------------------------


@pytest.fixture
def course_copy(tmp_path):
    """A copy of the coursedb package, as a course checkout that a 'git pull' will update."""
    shutil.copytree(ROOT / "coursedb", tmp_path / "coursedb", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def owner_from(copy: Path, home: Path) -> tuple[subprocess.Popen, str]:
    """An OWNER running the copy's coursedb (its folder first on sys.path, as a checkout is)."""
    return start_owner(home, cwd=copy, PYTHONPATH=str(copy))


async def columns(url: str, table: str) -> set[str]:
    rows = await fetch(url, "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table)
    return {r["column_name"] for r in rows}


def test_a_migration_added_while_the_server_runs_reaches_the_next_owner_only(srv, course_copy):
    before, before_url = owner_from(course_copy, srv.home)
    try:
        templates = {d.name for d in run(owned(srv.admin_url)) if "template" in d.kind}
        migrations = course_copy / "coursedb" / "migrations"
        (migrations / "0099_phone.sql").write_text("ALTER TABLE users ADD COLUMN phone TEXT;\n")
        # Three owners at once after the 'pull': one builds the new template, all clone it.
        after = [owner_from(course_copy, srv.home) for _ in range(3)]
        try:
            for _, url in after:
                assert "phone" in run(columns(url, "users"))
            assert len({dbname(url) for _, url in after}) == 3
            # The running owner is unaffected: its database, its open transaction, its schema.
            run(owner_still_works(before_url))
            assert "phone" not in run(columns(before_url, "users"))
            # (This test's own coursedb has no 0099, so it would call the new one "old": go by names.)
            now = {d.name for d in run(owned(srv.admin_url)) if "template" in d.kind}
            assert len(now) == 1, now  # one build for the three owners
            assert not now & templates, "the old template is dropped once unused"
        finally:
            for proc, _ in after:
                end_owner(proc)
    finally:
        end_owner(before)
    assert before.returncode == 0, before.stderr.read() if before.stderr else ""
    # The repository's own migrations are back in charge for the next test: their template returns.
    owner, url = start_owner(srv.home)
    try:
        assert "phone" not in run(columns(url, "users"))
    finally:
        end_owner(owner)


# --- the keeper's session: server restarts, forks, exit ----------------------------------------


def test_after_a_server_restart_the_owners_sessions_come_back_and_keep_their_databases(srv):
    """The postmaster is killed and someone else starts it again: each owner's session
    reconnects and takes its lock again, so later sweeps leave its database alone."""
    owner, url = start_owner(srv.home)
    try:
        postmasters(srv.home)[0].kill()
        first = cli(srv.home, "start")  # restarts the server on the same data
        assert first.returncode == 0, first.stderr
        assert "dropped" not in first.stdout
        wait_until_locked(srv.admin_url, dbname(url))
        later = cli(srv.home, "start", COURSEDB_SWEEP_GRACE="0")  # a sweep that drops any free lock's database
        assert later.returncode == 0 and "dropped" not in later.stdout, later.stdout
        assert {d.name: d for d in run(owned(srv.admin_url))}[dbname(url)].locked
    finally:
        end_owner(owner)


FORKER = r"""
import os, sys
import coursedb

parent = coursedb.database_url()
pid = os.fork()
if pid == 0:
    child = coursedb.database_url()  # a forked child is an owner of its own
    print("child", child, flush=True)
    sys.stdin.readline()
    sys.exit(0)  # a normal exit: drops the child's database only
print("parent", parent, flush=True)
os.waitpid(pid, 0)
print("parent-again", coursedb.database_url(), flush=True)
sys.stdin.readline()
"""


def test_a_forked_child_is_a_new_owner_and_leaves_its_parents_database_alone(srv):
    proc = subprocess.Popen(
        [PYTHON, "-c", FORKER],
        env=env_for(srv.home),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = dict(proc.stdout.readline().split() for _ in range(2))
        parent, child = dbname(lines["parent"]), dbname(lines["child"])
        assert parent != child
        listed = {d.name: d for d in run(owned(srv.admin_url))}
        assert listed[parent].locked and listed[child].locked
        proc.stdin.write("\n")  # the child exits (both read the same stdin: one line is enough for it)
        proc.stdin.flush()
        again = proc.stdout.readline().split()
        assert again == ["parent-again", lines["parent"]]  # the parent's database and session survived
        names = run(database_names(srv.admin_url))
        assert parent in names and child not in names
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0
    assert parent not in run(database_names(srv.admin_url))


def test_an_owner_exits_even_when_its_server_is_frozen(home):
    """At exit an owner drops its database over its session; a frozen server must not keep the
    process (a kernel being shut down) from exiting: the drop and the session's close are bounded."""
    assert cli(home, "start").returncode == 0
    owner, url = start_owner(home)
    pid = json.loads((home / "state.json").read_text())["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        owner.stdin.close()  # asks it to exit normally; its last query waits on the frozen server
        owner.wait(timeout=60)  # a hang fails here (the bound is generous: no timing is asserted)
    finally:
        os.kill(pid, signal.SIGCONT)
        for stream in (owner.stdout, owner.stderr):
            stream.close()
    assert owner.returncode is not None
    # Its DROP may still run once the server resumes; if not, no session holds the database's
    # lock any more, so the next start drops it. Either way it is gone.
    admin_url = json.loads((home / "state.json").read_text())["admin_url"]
    assert cli(home, "start", COURSEDB_SWEEP_GRACE="0").returncode == 0
    assert dbname(url) not in run(database_names(admin_url))
