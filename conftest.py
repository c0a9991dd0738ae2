"""Fixtures for the whole course: the reference tests in tests/ and every %%ipytest cell.

    db_url        DSN of a database that belongs to this process alone (cloned per run)
    db_pool       one asyncpg pool per session; every connection gets the course's codecs
    db_conn       a pooled connection inside a transaction that is always rolled back
    db_committed  the pool, for code that must see committed rows; tables emptied afterwards

Where the server comes from (Docker, embedded wheel, or COURSEDB_URL) is coursedb's job.
"""

import asyncpg
import pytest
import pytest_asyncio

import coursedb
from coursedb.room import full_server_message


@pytest.fixture(scope="session")
def db_url() -> str:
    try:
        return coursedb.database_url()
    except coursedb.CourseDBError as exc:
        pytest.fail(f"coursedb: {exc}", pytrace=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db_pool(db_url):
    # Two connections: enough to show concurrency and isolation, small enough for a room's shared
    # server (coursedb/room.py: the budget per learner).
    try:
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2, init=coursedb.init_connection)
    except asyncpg.TooManyConnectionsError as exc:
        pytest.fail(f"coursedb: {full_server_message(exc)}", pytrace=False)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(loop_scope="session")
async def db_conn(db_pool):
    async with db_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield conn
        finally:
            # A raw COMMIT or ROLLBACK in the test ends our transaction early: what it
            # committed is permanent, so we clean up and say so instead of leaking rows.
            ended_by_test = not conn.is_in_transaction()
            await transaction.rollback()
            if ended_by_test:
                await coursedb.empty_tables(conn)
                pytest.fail(
                    "the test ended db_conn's transaction (COMMIT/ROLLBACK); its writes were "
                    "committed, so db_conn emptied the tables. Use conn.transaction() instead.",
                    pytrace=False,
                )


@pytest_asyncio.fixture(loop_scope="session")
async def db_committed(db_pool):
    yield db_pool
    async with db_pool.acquire() as conn:
        await coursedb.empty_tables(conn)
