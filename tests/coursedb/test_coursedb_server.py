"""coursedb's shared server and its databases, on private embedded servers.

One server per module (``srv``, listening on a free TCP port too) serves the tests that do
not break it; tests that must start cold, break or stop a server get a fresh home of their
own. Every home is private (never the shared /tmp/coursedb-<uid>) and stopped afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import asyncpg
import pytest

from coursedb import CourseDBError, databases, platform, server
from coursedb.backends import embedded
from tests.helpers import (
    PYTHON,
    ROOT,
    assert_one_line_error,
    cli,
    database_names,
    dbname,
    end_owner,
    env_for,
    fetch,
    leftovers,
    lock_and_create,
    owned,
    postmasters,
    run,
    settings_for,
    start_owner,
    tcp_server,
)


@pytest.fixture(scope="module")
def srv():
    with tcp_server() as server:
        yield server


# --- one server, shared -------------------------------------------------------------------


def test_start_again_reuses_the_running_server(srv):
    before = [p.pid for p in postmasters(srv.home)]
    result = cli(srv.home, "start", COURSEDB_PORT=str(srv.port))
    assert result.returncode == 0, result.stderr
    assert [p.pid for p in postmasters(srv.home)] == before
    assert len(before) == 1


def test_status_shows_backend_version_urls_and_databases_without_the_password(srv):
    result = cli(srv.home, "status")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "backend:   embedded" in out
    assert "version:   PostgreSQL " in out
    assert f"tcp url:   postgresql://postgres:***@127.0.0.1:{srv.port}/postgres" in out
    assert srv.password not in out
    assert f"{databases.template_name()}   course schema template" in out


def test_status_when_nothing_runs_says_how_to_start(home):
    result = cli(home, "status")
    assert result.returncode == 0, result.stderr
    assert "No coursedb server is running" in result.stdout
    assert "python -m coursedb start" in result.stdout
    assert not postmasters(home)


def test_the_tcp_url_works_with_the_password_from_the_home(srv):
    rows = run(fetch(f"postgresql://postgres:{srv.password}@127.0.0.1:{srv.port}/postgres", "SELECT 1 AS one"))
    assert rows[0]["one"] == 1


async def test_each_process_gets_its_own_database_dropped_when_it_exits(srv):
    first, first_url = start_owner(srv.home)
    second, second_url = start_owner(srv.home)
    try:
        assert dbname(first_url) != dbname(second_url)
        names = await database_names(srv.admin_url)
        assert {dbname(first_url), dbname(second_url)} <= names
        # Each has the course schema, and neither sees the other's uncommitted row.
        for url in (first_url, second_url):
            assert (await fetch(url, "SELECT count(*) AS n FROM users"))[0]["n"] == 0
        owners = {d.name: d.owner for d in await owned(srv.admin_url)}
        assert owners[dbname(first_url)]["pid"] == first.pid
        assert owners[dbname(second_url)]["kind"] == "python"
    finally:
        end_owner(first)
        end_owner(second)
    names = await database_names(srv.admin_url)
    assert dbname(first_url) not in names
    assert dbname(second_url) not in names


async def test_a_killed_owners_database_is_timed_then_dropped_by_a_later_user(srv):
    """A free lock proves nothing at once (its owner's session may be coming back): the next
    user's sweep times it, status says for how long, and a sweep drops it once the lock has been
    free for the whole grace (here 0 s, through the setting tests use)."""
    victim, victim_url = start_owner(srv.home)
    end_owner(victim, kill=True)  # SIGKILL: no atexit, the database stays behind...
    listed = {d.name: d for d in await owned(srv.admin_url)}
    assert listed[dbname(victim_url)].alive is False
    line = next(ln for ln in cli(srv.home, "status").stdout.splitlines() if dbname(victim_url) in ln)
    assert "lock free (no sweep has timed it yet): a sweep drops it once free for 600 s" in line
    first, first_url = start_owner(srv.home)  # ...the next process's sweep times it...
    try:
        assert dbname(victim_url) in await database_names(srv.admin_url)
        line = next(ln for ln in cli(srv.home, "status").stdout.splitlines() if dbname(victim_url) in ln)
        assert "lock free for " in line and "s, as sweeps saw it" in line
        survivor, survivor_url = start_owner(srv.home, COURSEDB_SWEEP_GRACE="0")  # ...and a later one drops it
        try:
            names = await database_names(srv.admin_url)
            assert dbname(victim_url) not in names
            assert {dbname(first_url), dbname(survivor_url)} <= names
        finally:
            end_owner(survivor)
    finally:
        end_owner(first)


async def test_a_sweep_drops_exactly_the_databases_no_session_holds_the_lock_of(srv):
    """The owner takes its lock before CREATE DATABASE (and writes its COMMENT after), so a
    sweep at any moment keeps a live creator's database (seen as 14 failed cells when 8 kernels
    started at once), whatever the name's PID says; a hand-made coursedb_* database is never
    touched."""
    held = "coursedb_1_cafe01"  # PID 1 in the name: it is the lock that counts
    orphan = "coursedb_1_cafe02"
    hand_made = "coursedb_my_copy"
    async with databases.admin_connection(srv.admin_url) as owner, databases.admin_connection(srv.admin_url) as conn:
        try:
            await lock_and_create(owner, held)
            await conn.execute(f"CREATE DATABASE {orphan} TEMPLATE {databases.template_name()}")
            await conn.execute(f"CREATE DATABASE {hand_made}")
            sweep = await databases.drop_stale(conn, grace=0)
            names = await database_names(srv.admin_url)
            assert {held, hand_made} <= names
            assert orphan not in names and sweep.dropped == [orphan]
        finally:
            for name in (held, orphan, hand_made):
                await conn.execute(f"DROP DATABASE IF EXISTS {name}")


def test_switching_backend_while_a_server_runs_is_refused_with_the_fix(srv):
    result = cli(srv.home, "start", COURSEDB_BACKEND="docker")
    assert_one_line_error(result, "An embedded server is already running", "python -m coursedb stop")


def test_a_dropped_template_is_rebuilt(srv):
    """The template is marked IS_TEMPLATE, so a stray DROP DATABASE fails; if someone drops it
    anyway, the next process that needs a database rebuilds it instead of failing."""
    template = databases.template_name()
    with pytest.raises(asyncpg.WrongObjectTypeError, match="cannot drop a template database"):
        run(fetch(srv.admin_url, f"DROP DATABASE {template}"))
    run(fetch(srv.admin_url, f"ALTER DATABASE {template} IS_TEMPLATE false"))
    run(fetch(srv.admin_url, f"DROP DATABASE {template}"))
    owner, url = start_owner(srv.home)
    try:
        assert run(fetch(url, "SELECT count(*) AS n FROM orders"))[0]["n"] == 0
    finally:
        end_owner(owner)


# --- the url backend, pointed at the private server ------------------------------------------


@pytest.fixture(scope="module")
def roles(srv):
    """learner: may log in, may not create databases. teacher: may create databases."""

    async def create():
        conn = await asyncpg.connect(srv.admin_url)
        try:
            await conn.execute("CREATE ROLE learner LOGIN PASSWORD 'learner-pw'")
            await conn.execute("CREATE ROLE teacher LOGIN CREATEDB PASSWORD 'teacher-pw'")
            await conn.execute("CREATE DATABASE keep_me")  # not coursedb's: must survive everything
        finally:
            await conn.close()

    run(create())
    return {
        "learner": f"postgresql://learner:learner-pw@127.0.0.1:{srv.port}/postgres",
        "teacher": f"postgresql://teacher:teacher-pw@127.0.0.1:{srv.port}/postgres",
        "wrong_password": f"postgresql://learner:nope@127.0.0.1:{srv.port}/postgres",
        "no_database": f"postgresql://teacher:teacher-pw@127.0.0.1:{srv.port}/no_such_db",
    }


@pytest.mark.parametrize(
    ("which", "fragments"),
    [
        ("learner", ["may not create databases", "ALTER ROLE <user> CREATEDB"]),
        ("wrong_password", ["refused the login", "check user and password"]),
        ("no_database", ["has no such database", "no_such_db"]),
    ],
)
def test_url_backend_errors_are_one_line(home, roles, which, fragments):
    result = cli(home, "start", COURSEDB_BACKEND=None, COURSEDB_URL=roles[which])
    message = assert_one_line_error(result, *fragments)
    assert "learner-pw" not in message and "teacher-pw" not in message
    assert not (home / "state.json").exists()


async def test_url_backend_stop_never_touches_a_live_owners_database_nor_the_server(srv, roles, home):
    """The url backend on a server shared with other roles and machines: stop drops the stale
    coursedb databases it may drop, never one whose lock a live owner holds (nor the template
    while such an owner lives), never a hand-made coursedb_* one, and does not claim to have
    stopped a server it never started."""
    await _drop_templates(srv.admin_url)
    # Sweeps drop a free lock's database at once here: the grace is tested in tests/coursedb/robustness.
    extra = {"COURSEDB_BACKEND": "url", "COURSEDB_URL": roles["teacher"], "COURSEDB_SWEEP_GRACE": "0"}
    live, live_url = start_owner(home, **extra)
    killed, killed_url = start_owner(home, **extra)
    end_owner(killed, kill=True)
    try:
        assert live_url.startswith(f"postgresql://teacher:teacher-pw@127.0.0.1:{srv.port}/coursedb_")
        assert "backend:   url" in cli(home, "status", **extra).stdout
        await fetch(srv.admin_url, "CREATE DATABASE coursedb_someone_else")  # hand-made, the superuser's
        result = cli(home, "stop", **extra)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "dropped 1 coursedb database(s)" in out and "teacher:***@" in out
        assert f"left 1 in use by live owners (here or on other machines): {dbname(live_url)}" in out
        assert "left 1 not made by coursedb: coursedb_someone_else" in out
        assert "stopped the server" not in out and "running: coursedb did not start it" in out
        names = await database_names(srv.admin_url)
        assert dbname(killed_url) not in names
        assert {dbname(live_url), databases.template_name(role="teacher"), "coursedb_someone_else"} <= names
        assert {"postgres", "keep_me", "template1"} <= names
        assert postmasters(srv.home), "the url backend's stop must not stop the server it points at"
        end_owner(live)  # its database goes with it; now the template is unused
        result = cli(home, "stop", **extra)
        assert "dropped 1 coursedb database(s)" in result.stdout, result.stdout
        assert databases.template_name(role="teacher") not in await database_names(srv.admin_url)
    finally:
        if live.poll() is None:
            end_owner(live)
        await fetch(srv.admin_url, "DROP DATABASE IF EXISTS coursedb_someone_else")
        await _drop_templates(srv.admin_url)  # the next user of srv rebuilds its own


async def _drop_templates(admin_url: str) -> None:
    """Every course template on the server (they may belong to another role than the next test's)."""
    async with databases.admin_connection(admin_url) as conn:
        for row in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'coursedb\\_template%'"):
            await databases.drop_database(conn, row["datname"])


# --- starting and stopping -------------------------------------------------------------------


def test_two_processes_starting_at_the_same_moment_share_one_server(home):
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "coursedb", "start"], env=env_for(home), cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0] == outs[1]
    assert len(postmasters(home)) == 1


def test_a_busy_port_is_named(srv, home):
    result = cli(home, "start", COURSEDB_PORT=str(srv.port))
    assert_one_line_error(result, f"Port {srv.port} (COURSEDB_PORT) is already in use")
    assert not postmasters(home)
    assert not (home / "data").exists()


def test_a_port_taken_by_another_program_is_named(home):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        result = cli(home, "start", COURSEDB_PORT=str(port))
    assert_one_line_error(result, f"Port {port} (COURSEDB_PORT) is already in use", "unset COURSEDB_PORT")
    assert not postmasters(home)


@pytest.mark.parametrize("phase", ["initdb", "server-up"])
@pytest.mark.timeout(60)
@pytest.mark.skipif(os.name == "nt", reason="SIGINT to a child process and preexec_fn: POSIX only")
def test_ctrl_c_during_start_leaves_nothing_half_started(home, phase):
    """SIGINT (what Ctrl-C sends) while initdb runs, or after the server came up but before
    coursedb recorded it: either way no postmaster and no state stay behind."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "coursedb", "start"],
        env=env_for(home),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A job started in the background by a non-interactive shell (as CI may be) inherits
        # SIGINT ignored, and Python then never raises KeyboardInterrupt: restore what a
        # terminal's Ctrl-C meets.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        while proc.poll() is None:
            if phase == "initdb" and (home / "data").exists():
                break
            if phase == "server-up" and postmasters(home):
                break
            time.sleep(0.005)
        assert proc.poll() is None, "start finished before the phase under test was seen"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert err.strip() == "coursedb: interrupted; nothing was left half-started."
    assert not postmasters(home)
    assert not (home / "state.json").exists()
    assert cli(home, "start").returncode == 0  # and a later start works
    assert len(postmasters(home)) == 1


def test_a_held_lock_gives_a_sentence_not_a_hang(home, monkeypatch):
    holder = subprocess.Popen(
        [PYTHON, "-c", "import filelock, sys; l = filelock.FileLock(sys.argv[1]); l.acquire(); print('held',"
         " flush=True); sys.stdin.read()", str(home / "lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(server, "LOCK_TIMEOUT", 0.5)
        with pytest.raises(CourseDBError, match=r"Another coursedb process has held .*/lock for 0.5 s"):
            server.ensure(settings_for(home))
    finally:
        end_owner(holder)
    assert not postmasters(home)


# --- the home directory ---------------------------------------------------------------------


def test_a_home_others_may_write_is_refused(home):
    home.chmod(0o777)
    assert_one_line_error(cli(home, "start"), "is writable by other users", f"chmod go-w {home}")
    assert not postmasters(home)


@pytest.mark.skipif(not platform.is_root(), reason="only root can give a directory to another user")
def test_a_home_owned_by_someone_else_is_refused(home):

    os.chown(home, 65534, 65534)  # nobody
    assert_one_line_error(cli(home, "start"), "is not a directory owned by you")


@pytest.mark.skipif(not platform.is_root(), reason="as root the server runs as the 'coursedb' user")
def test_as_root_a_home_the_server_user_cannot_enter_is_named_not_opened(home):
    inner = home / "closed"
    inner.mkdir(mode=0o700)
    result = cli(inner, "start")
    assert_one_line_error(result, f"{inner} is closed to it", f"chmod o+x {inner}")
    assert inner.stat().st_mode & 0o777 == 0o700  # we said so; we did not open it ourselves


# --- last: these restart and finally stop the module's server -----------------------------------


def test_a_failing_server_start_names_the_log_and_leaves_no_process(srv):
    """Simulated with a corrupt postgresql.conf in the data directory."""
    port = {"COURSEDB_PORT": str(srv.port)}
    embedded.kill(settings_for(srv.home, **port))
    conf = srv.home / "data" / "postgresql.conf"
    original = conf.read_text()
    conf.write_text(original + "\nthis is not a setting\n")
    try:
        result = cli(srv.home, "start", **port)
    finally:
        conf.write_text(original)
    assert_one_line_error(result, "The embedded PostgreSQL server did not start", f"Full log: {srv.home}/server.log")
    assert f'FATAL:  configuration file "{srv.home}/data/postgresql.conf" contains errors' in result.stderr
    assert not postmasters(srv.home)
    assert cli(srv.home, "start", **port).returncode == 0  # fixed: the next start works
    assert len(postmasters(srv.home)) == 1


def test_stop_leaves_nothing_behind(srv):
    """No process, no data directory, no socket, no state, no home: even with a client connected
    (an owner: only --force stops a server someone uses)."""
    owner, _ = start_owner(srv.home)
    try:
        result = cli(srv.home, "stop", "--force")
    finally:
        end_owner(owner, kill=True)
    assert result.returncode == 0, result.stderr
    assert "stopped the server and removed its files" in result.stdout
    assert leftovers(srv.home) == []
    assert not srv.home.exists()
    assert cli(srv.home, "stop").stdout.strip() == "nothing to stop"
