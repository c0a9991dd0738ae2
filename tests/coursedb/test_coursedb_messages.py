"""Every message made whole: each names the cause and the fix, in one or two sentences.

On private servers; the frozen-server case stops a private postmaster with SIGSTOP and always
lets it go on again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import asyncpg
import pytest

import coursedb
from coursedb import CourseDBError, Settings, databases, hints, keeper, server
from tests.helpers import (
    PYTHON,
    ROOT,
    assert_one_line_error,
    cleanup,
    cli,
    end_owner,
    env_for,
    free_port,
    impatient_cli,
    make_home,
    postmasters,
    run,
    settings_for,
    start_owner,
    tcp_server,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def tcp():
    """A private embedded server that also listens on TCP."""
    with tcp_server() as server:
        yield server


# --- a stale db_url after 'coursedb stop' -------------------------------------------------------


def test_a_db_url_made_stale_by_stop_says_run_the_setup_cell_again(home):
    settings = settings_for(home)
    url = coursedb.database_url(settings)
    coursedb.stop(settings)
    coursedb.ensure_server(settings)  # the next %%ipytest (or anyone) starts the server again
    try:
        with pytest.raises(asyncpg.InvalidCatalogNameError) as info:
            run(asyncpg.connect(url))
        message = hints.missing_database(info.value)
        assert message is not None
        assert "no longer exists" in message and "run the setup cell again" in message
        assert url.split("/")[3].split("?")[0] in message
        assert coursedb.database_url(settings) != url  # and the setup cell does give a new one
    finally:
        coursedb.stop(settings)


def test_other_missing_databases_are_not_explained_as_coursedbs():
    assert hints.missing_database(asyncpg.InvalidCatalogNameError('database "shop" does not exist')) is None


# --- a notebook outside the course folder -----------------------------------------------------


def test_a_notebook_outside_the_course_folder_is_told_why_fixtures_are_missing(tmp_path):
    message = hints.course_fixtures_problem(tmp_path)
    assert message is not None
    assert "outside the course folder" in message and "fixture 'db_conn' not found" in message
    assert hints.course_fixtures_problem(ROOT / "notebooks") is None


# --- COURSEDB_URL with a password that needs percent-encoding ---------------------------------


@pytest.mark.parametrize(("password", "char"), [("p@ss", "'@'"), ("pa/ss", "'/'"), ("pa#ss", "'#'"), ("pa?ss", "'?'")])
def test_an_unencoded_password_says_to_percent_encode(home, password, char):
    url = f"postgresql://me:{password}@db.example:5432/postgres"
    result = cli(home, "start", COURSEDB_BACKEND="url", COURSEDB_URL=url)
    message = assert_one_line_error(result, f"contains {char}", "must be percent-encoded", "%40")
    assert password not in message


def test_a_colon_in_the_password_and_an_at_in_the_query_are_fine():
    for url in ("postgresql://me:pa:ss@db.example/postgres", "postgresql://db.example/postgres?user=a@b"):
        assert Settings.from_env({"COURSEDB_URL": url}).url == url


# --- COURSEDB_HOME: relative, ~, too long, with a quote ---------------------------------------


def test_a_tilde_home_is_expanded_and_a_relative_one_is_the_same_from_every_folder():
    assert Settings.from_env({"COURSEDB_HOME": "~/cdbx"}).home == Path.home() / "cdbx"
    code = "from coursedb import Settings; print(Settings.from_env().home)"
    seen = {
        subprocess.run(
            [PYTHON, "-c", code], env=env_for(Path("cdb-rel")), cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        for cwd in (ROOT, ROOT / "notebooks", Path("/"))
    }
    assert seen == {str(ROOT / "cdb-rel")}  # kernels (cwd notebooks/) and the CLI agree


def test_a_home_too_long_for_the_socket_path_is_named_before_anything_starts(home):
    deep = home / ("x" * 90)
    result = cli(deep, "start")
    assert_one_line_error(result, "is too long", "limit is 107", "set a shorter one")
    assert not (deep / "data").exists() and not postmasters(deep)


@pytest.mark.parametrize("name", ["it's", 'say "hi"', "$(touch {mark})", "`touch {mark}`", "a$HOME"])
def test_a_home_a_shell_would_expand_is_refused_before_anything_is_created(home, name):
    """initdb and pg_ctl hand the data directory to /bin/sh in double quotes: $(...) would run."""
    mark = home / "ran"
    odd = home / name.format(mark=mark)
    result = cli(odd, "start")
    assert_one_line_error(result, "which initdb and pg_ctl (PostgreSQL's own tools) would hand to a shell")
    assert not odd.exists() and not mark.exists() and not postmasters(odd)
    assert sorted(p.name for p in home.iterdir()) == []  # no lock, no password file, no binaries


# --- PG* variables in the user's shell ------------------------------------------------------


def test_pg_variables_meant_for_another_server_do_not_break_the_embedded_one(home):
    meant_elsewhere = {
        "PGSSLMODE": "verify-full",
        "PGTARGETSESSIONATTRS": "read-only",
        "PGSSLROOTCERT": "/nonexistent/root.crt",
        "PGUSER": "nobody",
        "PGDATABASE": "nowhere",
    }
    assert cli(home, "start", **meant_elsewhere).returncode == 0
    owner, url = start_owner(home, **meant_elsewhere)
    try:
        assert "sslmode=disable" in url and "target_session_attrs=any" in url  # for every client
    finally:
        end_owner(owner)
    assert owner.returncode == 0, owner.stderr.read() if owner.stderr else ""


def test_pgtargetsessionattrs_against_a_url_server_is_one_line(tcp, home):
    result = cli(home, "start", COURSEDB_BACKEND="url", COURSEDB_URL=tcp.url, PGTARGETSESSIONATTRS="read-only")
    assert_one_line_error(result, "PGTARGETSESSIONATTRS", "unset it or override it in COURSEDB_URL")


def test_sslmode_require_against_a_server_without_ssl_gets_the_right_advice(tcp, home):
    result = cli(home, "start", COURSEDB_BACKEND="url", COURSEDB_URL=tcp.url + "?sslmode=require")
    message = assert_one_line_error(result, "does not offer SSL", "remove sslmode=require")
    assert "Check host and port" not in message


# --- COURSEDB_PORT set after the server started -----------------------------------------------


def test_coursedb_port_set_after_the_server_started_is_said(tcp):
    other = free_port()
    result = cli(tcp.home, "start", COURSEDB_PORT=str(other))
    assert result.returncode == 0, result.stderr
    assert f"note: COURSEDB_PORT={other} was set after the embedded server started" in result.stdout
    assert f"listens on port {tcp.port}" in result.stdout and "python -m coursedb stop" in result.stdout
    status = cli(tcp.home, "status", COURSEDB_PORT=str(other)).stdout
    assert f"COURSEDB_PORT={other} was set after" in status


def test_coursedb_port_set_after_the_server_started_is_said_once_to_a_kernel(tcp, capsys):
    settings = settings_for(tcp.home, COURSEDB_PORT=str(free_port()))
    try:
        url = coursedb.database_url(settings)
        assert coursedb.database_url(settings) == url  # the database is given all the same
    finally:
        coursedb._drop_own(str(tcp.home))
    err = capsys.readouterr().err
    assert err.count("was set after the embedded server started") == 1, err


# --- a frozen server --------------------------------------------------------------------------


POSIX_SIGSTOP = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="SIGSTOP freezes a process: POSIX only")


@pytest.fixture(scope="module")
def frozen_home():
    """A private server for the frozen-server tests, started once: each test freezes it for its own run."""
    path = make_home()
    try:
        assert cli(path, "start").returncode == 0
        yield path
    finally:
        cleanup(path)


@pytest.fixture
def frozen(frozen_home, monkeypatch):
    """The private server with its postmaster stopped (SIGSTOP): it accepts nothing, answers nothing.
    Connection attempts give up after 1 s (10 s as shipped), here and in ``impatient_cli``."""
    for module in (databases, keeper):
        monkeypatch.setattr(module, "CONNECT_TIMEOUT", 1)
    pid = json.loads((frozen_home / "state.json").read_text())["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield frozen_home
    finally:
        os.kill(pid, signal.SIGCONT)


@POSIX_SIGSTOP
def test_a_frozen_server_gives_a_reason_never_an_empty_one(frozen):
    settings = settings_for(frozen)
    with pytest.raises(CourseDBError) as info:
        coursedb.database_url(settings)
    message = str(info.value)
    assert not message.rstrip().endswith(":")
    assert "did not answer in time (frozen or overloaded" in message and "python -m coursedb stop" in message
    status = server.status(settings)
    assert status.running and status.version is None
    assert status.error and "did not answer in time" in status.error
    coursedb._drop_own(str(frozen))  # no database was made; ends the session it tried to open


@POSIX_SIGSTOP
def test_status_of_a_frozen_server_never_prints_a_blank_error(frozen):
    result = impatient_cli(frozen, "status")
    assert result.returncode == 0, result.stderr
    assert "PostgreSQL ?" not in result.stdout
    error = next(line for line in result.stdout.splitlines() if line.startswith("error:"))
    assert error.split(":", 1)[1].strip(), result.stdout
    assert error.rstrip().endswith("(frozen or overloaded, or what listens there is not PostgreSQL)"), error
