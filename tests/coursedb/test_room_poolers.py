"""A room server behind a real PgBouncer (Debian's package) in front of a stock PostgreSQL 15.

In transaction or statement mode a pooler lends each transaction any server session, so an
owner's session (and the advisory locks that vouch for its databases) cannot exist: coursedb
refuses such a COURSEDB_URL in one sentence that names the fix. In session mode everything works,
and an owner never loses its database while PgBouncer recycles its other server connections.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest

pytest.importorskip("pwd", reason="Debian's PostgreSQL and PgBouncer, run as their own user: Linux only")

from coursebook.system_postgres import ROOM_ROLE, system_postgres
from coursebook.system_postgres import available as postgres_available
from coursedb.backends import url as url_backend
from tests.helpers import (
    assert_one_line_error,
    cli,
    dbname,
    end_owner,
    fetch,
    run,
    start_owner,
)
from tests.helpers import pgbouncer as bouncer

pytestmark = [
    pytest.mark.skipif(postgres_available() is not None, reason=str(postgres_available())),
    pytest.mark.skipif(bouncer.available() is not None, reason=str(bouncer.available())),
]


@pytest.fixture(scope="module")
def pg():
    with system_postgres() as server:
        yield server


def through(pool) -> dict[str, str]:
    return {"COURSEDB_BACKEND": "url", "COURSEDB_URL": pool.url(ROOM_ROLE)}


@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_transaction_and_statement_pooling_are_refused_in_one_sentence(pg, home, mode):
    with bouncer.pgbouncer(pg.folder, [ROOM_ROLE], mode) as pool:
        result = cli(home, "start", **through(pool))
        message = assert_one_line_error(
            result,
            "goes through a connection pooler in transaction or statement mode",
            "point COURSEDB_URL at the server's own port, or at a pool in session mode (pool_mode = session)",
        )
        assert "__asyncpg_stmt" not in message and "prepared statement" not in message
        assert not (home / "state.json").exists()


def test_the_check_tells_a_pooler_by_what_it_does_not_by_its_name(pg):
    """The probe itself, against each mode and against the server directly."""

    async def kept(url: str) -> bool | None:
        conn = await url_backend._connect(url)
        try:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            if backend == conn.get_server_pid():
                return None  # directly connected: no probe needed
            return await url_backend.keeps_sessions(url, conn, backend)
        finally:
            await conn.close()

    assert run(kept(pg.room_url)) is None
    for mode, expected in [("session", True), ("transaction", False), ("statement", False)]:
        with bouncer.pgbouncer(pg.folder, [ROOM_ROLE], mode) as pool:
            assert run(kept(pool.url(ROOM_ROLE))) is expected, mode
            # Transaction mode, with the first client's server session lent to someone else meanwhile:
            # the probe ends it from another session, and the first client carries on elsewhere.
            if mode == "transaction":
                assert run(kept_while_busy(pool.url(ROOM_ROLE))) is False


async def kept_while_busy(url: str) -> bool:
    busy = await url_backend._connect(url)
    transaction = busy.transaction()
    await transaction.start()
    await busy.fetchval("SELECT pg_backend_pid()")  # pins a server session to `busy`
    conn = await url_backend._connect(url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")  # another one
        await transaction.commit()  # `busy`'s goes back to the pool: the probe's second client gets it
        return await url_backend.keeps_sessions(url, conn, backend)
    finally:
        await conn.close()
        await busy.close()


def test_session_pooling_works_end_to_end(pg, home):
    with bouncer.pgbouncer(pg.folder, [ROOM_ROLE], "session") as pool:
        extra = through(pool)
        started = cli(home, "start", **extra)
        assert started.returncode == 0, started.stderr
        owner, url = start_owner(home, **extra)
        try:
            assert f"127.0.0.1:{pool.port}/" in url
            run(fetch(url, "INSERT INTO users (email, name) VALUES ('a@example.com', 'A')"))
            assert run(fetch(url, "SELECT count(*) AS n FROM users"))[0]["n"] == 1
            status = cli(home, "status", **extra)
            assert status.returncode == 0 and dbname(url) in status.stdout, status.stdout + status.stderr
            assert "live (its session holds the lock)" in status.stdout
        finally:
            end_owner(owner)
        stopped = cli(home, "stop", **extra)
        assert stopped.returncode == 0, stopped.stderr
        left = run(fetch(pg.superuser_url, "SELECT datname FROM pg_database WHERE datname LIKE 'coursedb%'"))
        assert left == [], left


@pytest.mark.timeout(300)
def test_an_owner_behind_session_pooling_never_loses_its_database_while_pgbouncer_recycles(pg, home):
    """server_lifetime = 1 and server_idle_timeout = 1: PgBouncer closes every server connection it
    gets back after a second. Meanwhile other owners start and end and sweeps run, for several
    rounds: the first owner's database, and the row it committed, are still there."""
    settings = {"server_lifetime": "1", "server_idle_timeout": "1", "server_check_delay": "0"}
    with bouncer.pgbouncer(pg.folder, [ROOM_ROLE], "session", **settings) as pool:
        extra = through(pool)
        keeper, url = start_owner(home, **extra)
        try:
            run(fetch(url, "INSERT INTO users (email, name) VALUES ('kept@example.com', 'Kept')"))
            backends_seen = set()
            for _ in range(6):
                other, other_url = start_owner(home, **extra)
                backends_seen.add(run(fetch(other_url, "SELECT pg_backend_pid() AS pid"))[0]["pid"])
                end_owner(other, kill=len(backends_seen) % 2 == 0)
                assert cli(home, "start", **extra).returncode == 0  # a sweep
                time.sleep(1.2)  # longer than server_lifetime: the pool recycles meanwhile
            rows = run(fetch(url, "SELECT email FROM users"))
            assert [r["email"] for r in rows] == ["kept@example.com"]
            assert keeper.poll() is None
            log = pool.log.read_text()
            recycled = log.count("closing because: server lifetime over") + log.count("server idle timeout")
            assert recycled > 0, "PgBouncer never recycled a server connection: the test proved nothing"
        finally:
            end_owner(keeper)


def test_a_pooler_switched_to_transaction_mode_later_is_one_sentence_too(pg, home):
    """The state file remembers a session-mode start; then the pool is reconfigured: status and
    stop say what is wrong in one clause instead of asyncpg's page about prepared statements."""
    with bouncer.pgbouncer(pg.folder, [ROOM_ROLE], "session") as pool:
        assert cli(home, "start", **through(pool)).returncode == 0
        state = (home / "state.json").read_text()
    with bouncer.pgbouncer(pg.folder, [ROOM_ROLE], "transaction") as pool:
        (home / "state.json").write_text(state.replace(str(_port_in(state)), str(pool.port)))
        for command in ("status", "stop"):
            result = cli(home, command, **through(pool))
            text = result.stdout + result.stderr
            assert "__asyncpg_stmt" not in text and "NOTE:" not in text, text


def _port_in(state: str) -> int | None:
    return urlsplit(json.loads(state)["admin_url"]).port
