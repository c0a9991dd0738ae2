"""Privacy by the server: on a stock PostgreSQL 15, a learner's role reads and writes only its own outcomes.

Two learner roles and an instructor role on one Debian PostgreSQL 15 (tests/helpers/system_postgres.py).
The instructor creates the outcomes table (a learner's role may not create tables in ``postgres`` on
PostgreSQL 15+); row-level security keyed on ``current_user`` does the rest, whatever the client sends.
"""

from __future__ import annotations

import asyncpg
import pytest

from coursedb import progress, roomview
from tests.helpers import run
from tests.helpers.system_postgres import available, system_postgres

reason = available()
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.fixture(scope="module")
def pg15():
    with system_postgres() as pg:
        yield pg


def url(pg, role: str) -> str:
    return pg.superuser_url.replace("postgres@", f"{role}@", 1)


async def as_role(pg, role: str, action):
    conn = await asyncpg.connect(url(pg, role), timeout=10)
    try:
        return await action(conn)
    finally:
        await conn.close()


def run_as(pg, role: str, action):
    return run(as_role(pg, role, action))


def failing(exercise: str, check: str) -> progress.Outcome:
    return progress.Outcome("", exercise, False, (progress.Failed(check, f"{check} said no"),))


def test_a_learner_reads_and_writes_only_their_own_outcomes(pg15):
    async def setup(conn):
        assert (await conn.fetchval("SHOW server_version")).startswith("15")
        await conn.execute("CREATE ROLE instructor LOGIN CREATEROLE")
        await conn.execute("GRANT CREATE ON SCHEMA public TO instructor")  # what the room's setup grants it
        await conn.execute("CREATE ROLE alice LOGIN")
        await conn.execute("CREATE ROLE bob LOGIN")

    run_as(pg15, "postgres", setup)
    assert "created" in run_as(pg15, "instructor", progress.create_table)

    async def alice_records(conn):
        assert await progress.table_state(conn) == "usable"
        await progress.insert(conn, [failing("3.2", "test_tie"), failing("3.2", "test_tie")])

    async def bob_records(conn):
        await progress.insert(conn, [failing("5.1", "test_cents")])

    run_as(pg15, "alice", alice_records)
    run_as(pg15, "bob", bob_records)

    async def alice_looks(conn):
        return [(o.learner, o.exercise) for o in await progress.fetch(conn)]

    assert run_as(pg15, "alice", alice_looks) == [("alice", "3.2"), ("alice", "3.2")]  # bob's row is not there
    assert run_as(pg15, "bob", alice_looks) == [("bob", "5.1")]

    async def alice_tries(conn, sql: str) -> str:
        try:
            await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            return f"{type(exc).__name__}: {exc}"
        return "allowed"

    table = progress.TABLE
    attempts = {
        "writes under bob's name": f"INSERT INTO {table} (learner, exercise, passed) VALUES ('bob', '5.1', true)",
        "takes bob's rows": f"UPDATE {table} SET learner = 'alice' WHERE learner = 'bob'",
        "deletes bob's rows": f"DELETE FROM {table} WHERE learner = 'bob'",
        "turns the policy off": f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        "plants a table of her own": "CREATE TABLE public.coursedb_outcomes_copy (x int)",
    }
    results = {what: run_as(pg15, "alice", lambda c, sql=sql: alice_tries(c, sql)) for what, sql in attempts.items()}
    assert "row-level security" in results["writes under bob's name"], results
    assert all(r.startswith("InsufficientPrivilegeError") for r in results.values()), results

    async def everyone(conn):
        return sorted((o.learner, o.exercise) for o in await progress.fetch(conn))

    assert run_as(pg15, "instructor", everyone) == [("alice", "3.2"), ("alice", "3.2"), ("bob", "5.1")]

    # A learner cannot start the room view: it would show them nothing but their own rows.
    with pytest.raises(ValueError, match="reads only its own rows"):
        run(roomview.prepare(url(pg15, "alice")))
    assert "is there (owner instructor)" in run(roomview.prepare(url(pg15, "instructor")))
