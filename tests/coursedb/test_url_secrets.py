"""A password in COURSEDB_URL, as ``user:password@`` or as ``?password=``, is never printed in clear.

Every path that prints the URL runs here against a real server (a private embedded one that listens
on TCP with a password): start, status and stop, and the errors a wrong URL meets.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
import pytest

from coursedb.settings import describe_url
from tests.helpers import cli, fetch, free_port, run, tcp_server

SECRET = "Sekr1t-pw-in-url"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@/db?host=/tmp/x", "postgresql://u@/db?host=/tmp/x"),
        ("postgresql://u@h/db?password=s3cret&sslmode=disable", "postgresql://u@h/db?password=***&sslmode=disable"),
        (
            "postgresql://u:p%40ss@h/db?sslmode=require&password=x",
            "postgresql://u:***@h/db?sslmode=require&password=***",
        ),
        ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
    ],
)
def test_describe_url_hides_every_password(url, shown):
    assert describe_url(url) == shown


@pytest.fixture(scope="module")
def server():
    with tcp_server() as srv:

        async def roles() -> None:
            await fetch(srv.admin_url, f"CREATE ROLE cannot_create LOGIN PASSWORD '{SECRET}'")
            await fetch(srv.admin_url, f"ALTER ROLE postgres PASSWORD '{SECRET}'")

        run(roles())
        yield srv


def url_with_query_password(port: int, user: str = "postgres", password: str = SECRET) -> str:
    return f"postgresql://{user}@127.0.0.1:{port}/postgres?password={password}"


def assert_hidden(result) -> str:
    text = result.stdout + result.stderr
    assert SECRET not in text, text
    assert "Traceback" not in text, text
    return text


@pytest.mark.parametrize("form", ["query", "userinfo"])
def test_start_status_and_stop_never_print_the_password(server, home, form):
    if form == "query":
        url = url_with_query_password(server.port)
    else:
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{server.port}/postgres"
    extra = {"COURSEDB_BACKEND": "url", "COURSEDB_URL": url}
    for command in ("start", "status", "stop"):
        result = cli(home, command, **extra)
        assert result.returncode == 0, result.stderr
        assert "***" in assert_hidden(result), (command, result.stdout)


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("wrong password", "refused the login"),
        ("no server", "Cannot reach the PostgreSQL server"),
        ("no CREATEDB", "may not create databases"),
        ("no such database", "has no such database"),
    ],
)
def test_errors_never_print_the_password(server, home, case, fragment):
    port = server.port
    url = {
        "wrong password": url_with_query_password(port, password=SECRET + "x"),
        "no server": url_with_query_password(free_port()),
        "no CREATEDB": url_with_query_password(port, user="cannot_create"),
        "no such database": url_with_query_password(port).replace("/postgres?", "/nowhere?"),
    }[case]
    for command in ("start", "status"):
        result = cli(home, command, COURSEDB_BACKEND="url", COURSEDB_URL=url)
        text = assert_hidden(result)
        if command == "start":
            assert result.returncode == 2 and fragment in text, text
            assert "password=***" in text, text


def test_room_add_never_prints_or_sends_a_learners_password(server, home, tmp_path):
    """`room add` prints no password, and hands the server only a SCRAM verifier it made itself:
    the learner logs in over TCP with the password in the credentials file, and nothing else."""
    path = tmp_path / "credentials.json"
    admin = f"postgresql://postgres:{SECRET}@127.0.0.1:{server.port}/postgres"
    log = Path(json.loads((server.home / "state.json").read_text())["log"])
    run(fetch(server.admin_url, "ALTER SYSTEM SET log_statement = 'all'"))
    run(fetch(server.admin_url, "SELECT pg_reload_conf()"))
    try:
        result = cli(home, "room", "add", "pat", "--credentials", str(path), COURSEDB_BACKEND="url", COURSEDB_URL=admin)
    finally:
        run(fetch(server.admin_url, "ALTER SYSTEM RESET log_statement"))
        run(fetch(server.admin_url, "SELECT pg_reload_conf()"))
    assert result.returncode == 0, result.stderr
    url = json.loads(path.read_text())["learners"]["pat"]["url"]
    password = unquote(urlsplit(url).password)
    assert password not in assert_hidden(result)
    statements = log.read_text(errors="replace")
    assert "CREATE ROLE" in statements and password not in statements
    stored = run(fetch(server.admin_url, "SELECT rolpassword FROM pg_authid WHERE rolname = 'coursedb_learner_pat'"))
    assert stored[0]["rolpassword"].startswith("SCRAM-SHA-256$4096:")
    assert run(fetch(url, "SELECT current_user AS me"))[0]["me"] == "coursedb_learner_pat"
    with pytest.raises(asyncpg.InvalidPasswordError):
        run(fetch(url.replace(password, password + "x"), "SELECT 1"))
