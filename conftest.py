"""Fixtures for the whole course: the reference tests in tests/ and every %%ipytest cell.

    db_url        DSN of a database that belongs to this process alone (cloned per run)
    db_pool       one asyncpg pool per session; every connection gets the course's codecs
    db_conn       a pooled connection inside a transaction that is always rolled back
    db_committed  the pool, for code that must see committed rows; all tables emptied afterwards

Where the server comes from (Docker, embedded wheel, or COURSEDB_URL) is coursedb's job, and so
are the checks below (coursedb/fixtures.py): they turn a leaked connection or a commit inside
db_conn into one sentence at the test that caused it.
"""

import asyncpg
import pytest
import pytest_asyncio

import coursedb
from coursedb.fixtures import Before, CommitGuard, close_pool, empty_after_pool_closed
from coursedb.room import full_server_message


@pytest.fixture(scope="session")
def db_url() -> str:
    """DSN of this process's own database, cloned from the course template (one per kernel or run)."""
    try:
        return coursedb.database_url()
    except coursedb.CourseDBError as exc:
        pytest.fail(f"coursedb: {exc}", pytrace=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db_pool(db_url):
    """One asyncpg pool for the session, with the course's codecs (init=) on every connection.

    A connection that was acquired and never released fails the session here, instead of
    making pool.close() wait forever.
    """
    # Two connections: enough to show concurrency and isolation, small enough for a room's shared
    # server (coursedb/room.py: the budget per learner).
    try:
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2, init=coursedb.init_connection)
    except asyncpg.TooManyConnectionsError as exc:
        pytest.fail(f"coursedb: {full_server_message(exc)}", pytrace=False)
    yield pool
    if problem := await close_pool(pool):
        pytest.fail(problem, pytrace=False)


@pytest_asyncio.fixture(loop_scope="session")
async def db_conn(db_pool):
    """A pooled connection inside a transaction that is rolled back after the test.

    Rows committed anyway (a COMMIT in the test, even COMMIT; BEGIN, or writes through
    db_pool) fail this test with an explanation, and are undone: rows it added are deleted, rows
    it changed or deleted are put back, so the next test finds the tables as this one did.
    """
    async with db_pool.acquire() as conn:
        before = await Before.take(conn)  # the tables as the test finds them: what the guard puts back
        transaction = conn.transaction()
        await transaction.start()
        guard = await CommitGuard.start(conn, before)
        try:
            yield conn
        finally:
            if guard.closed_by_test():
                pytest.fail(await guard.after_close(db_pool), pytrace=False)
            ended_by_test = await guard.transaction_ended()
            await transaction.rollback()
            if problem := await guard.leftovers(ended_by_test):
                pytest.fail(problem, pytrace=False)


@pytest_asyncio.fixture(loop_scope="session")
async def db_committed(db_pool, db_url):
    """The pool itself, for code that must commit (or see commits).

    Afterwards every table of the course schema (users, orders, events, and any table you made in
    the public schema) is emptied and its ids start again at 1: rows committed before the test go too.
    """
    yield db_pool
    if db_pool.is_closing():
        pytest.fail(await empty_after_pool_closed(db_url), pytrace=False)
    async with db_pool.acquire() as conn:
        await coursedb.empty_tables(conn)
