"""Privacy by the server: on a stock PostgreSQL 15, a learner's role reads and writes only its own outcomes.

``python -m coursedb room add alice bob`` on one Debian PostgreSQL 15 (coursebook/system_postgres.py), as
its superuser: a role per learner, the instructor's role, and the outcomes table (a learner's role may not
create tables in ``postgres`` on PostgreSQL 15+). Row-level security keyed on ``current_user`` does the
rest, whatever the client sends; only the instructor's role (and the table's owner) reads everyone's rows.
"""

from __future__ import annotations

import json

import asyncpg
import pytest

pytest.importorskip("pwd", reason="a Debian PostgreSQL run as its own user: Linux only")

from coursebook.system_postgres import available, system_postgres
from coursedb import names, progress, roomview
from tests.helpers import cleanup, cli, make_home, run

reason = available()
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.fixture(scope="module")
def pg15(tmp_path_factory):
    """The server, and the room `room add` made on it: {"alice": url, "bob": url, "instructor": url}."""
    with system_postgres() as pg:
        path = tmp_path_factory.mktemp("room") / "credentials.json"
        home = make_home()
        try:
            added = cli(home, "room", "add", "alice", "bob", "--credentials", str(path),
                        COURSEDB_BACKEND="url", COURSEDB_URL=pg.superuser_url)  # fmt: skip
        finally:
            cleanup(home)
        assert added.returncode == 0, added.stderr
        assert f"progress: created {progress.TABLE}" in added.stdout, added.stdout
        assert f"the role {names.INSTRUCTOR_ROLE} reads every learner's rows" in added.stdout
        stored = json.loads(path.read_text())
        yield {name: entry["url"] for name, entry in stored["learners"].items()} | {
            "instructor": stored["instructor"]["url"], "postgres": pg.superuser_url
        }  # fmt: skip


async def as_role(urls, who: str, action):
    conn = await asyncpg.connect(urls[who], timeout=10)
    try:
        return await action(conn)
    finally:
        await conn.close()


def run_as(urls, who: str, action):
    return run(as_role(urls, who, action))


def failing(exercise: str, check: str) -> progress.Outcome:
    return progress.Outcome("", exercise, False, (progress.Failed(check, f"{check} said no"),))


def test_a_learner_reads_and_writes_only_their_own_outcomes(pg15):
    async def version(conn):
        return await conn.fetchval("SHOW server_version")

    assert run_as(pg15, "postgres", version).startswith("15")

    async def alice_records(conn):
        assert await progress.table_state(conn) == "usable"
        await progress.insert(conn, [failing("3.2", "test_tie"), failing("3.2", "test_tie")])

    async def bob_records(conn):
        await progress.insert(conn, [failing("5.1", "test_cents")])

    run_as(pg15, "alice", alice_records)
    run_as(pg15, "bob", bob_records)

    async def alice_looks(conn):
        return [(o.learner, o.exercise) for o in await progress.fetch(conn)]

    alice, bob = names.learner_role("alice"), names.learner_role("bob")
    assert run_as(pg15, "alice", alice_looks) == [(alice, "3.2"), (alice, "3.2")]  # bob's row is not there
    assert run_as(pg15, "bob", alice_looks) == [(bob, "5.1")]

    async def alice_tries(conn, sql: str) -> str:
        try:
            await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            return f"{type(exc).__name__}: {exc}"
        return "allowed"

    table = progress.TABLE
    attempts = {
        "writes under bob's name": f"INSERT INTO {table} (learner, exercise, passed) VALUES ('{bob}', '5.1', true)",
        "takes bob's rows": f"UPDATE {table} SET learner = '{alice}' WHERE learner = '{bob}'",
        "deletes bob's rows": f"DELETE FROM {table} WHERE learner = '{bob}'",
        "turns the policy off": f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        "plants a table of her own": "CREATE TABLE public.coursedb_outcomes_copy (x int)",
    }
    results = {what: run_as(pg15, "alice", lambda c, sql=sql: alice_tries(c, sql)) for what, sql in attempts.items()}
    assert "row-level security" in results["writes under bob's name"], results
    assert all(r.startswith("InsufficientPrivilegeError") for r in results.values()), results

    async def everyone(conn):
        return sorted((o.learner, o.exercise) for o in await progress.fetch(conn))

    assert run_as(pg15, "instructor", everyone) == [(alice, "3.2"), (alice, "3.2"), (bob, "5.1")]

    # A learner cannot start the room view: it would show them nothing but their own rows.
    with pytest.raises(ValueError, match="reads only its own rows"):
        run(roomview.prepare(pg15["alice"]))
    assert "is there (owner postgres)" in run(roomview.prepare(pg15["instructor"]))


def test_the_instructor_sees_the_room_under_the_learners_names(pg15):
    """The view's data, read as the instructor's role: every learner `room add` made (by the name it was given),
    each one's connections (the instructor's role is a member of every learner's role, so it sees them)."""

    async def look() -> roomview.Room:
        alice_session = await asyncpg.connect(pg15["alice"], timeout=10)
        try:
            return await as_role(pg15, "instructor", lambda c: roomview.gather(c, progress.course_exercises()))
        finally:
            await alice_session.close()

    room = run(look())
    learners = {x.name: x for x in room.learners}
    assert sorted(learners) == ["alice", "bob"]
    assert learners["alice"].connections == 1 and learners["bob"].connections == 0
    assert learners["alice"].role == names.learner_role("alice")
    assert learners["alice"].limit is not None and learners["alice"].limit > 0
