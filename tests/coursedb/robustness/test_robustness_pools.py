"""Pool faults: each fails fast with a message that says what happened, and the pool recovers.

These run on this session's own database (the ``db_url`` fixture) with small pools of their
own, so ``db_pool`` and other tests never see the faults. The timeouts below bound how long a
fault may take to surface; no test asserts how fast anything was.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def small_pool(db_url):
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2, timeout=10)
    yield pool
    await pool.close()


async def sleeping(pool: asyncpg.Pool) -> int:
    """How many backends of this database are running the test's pg_sleep(60)."""
    return await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state = 'active' AND query = 'SELECT pg_sleep(60)'"
    )


async def until(predicate, limit: float = 10.0) -> None:
    """Poll ``predicate`` (an async callable) until it holds; fail after ``limit`` seconds."""

    async def poll() -> None:
        while not await predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), limit)  # asyncio.timeout() would need Python 3.11


async def test_exhausted_pool_times_out_instead_of_hanging(small_pool):
    held = [await small_pool.acquire(), await small_pool.acquire()]
    try:
        with pytest.raises(asyncio.TimeoutError):
            await small_pool.acquire(timeout=0.2)
    finally:
        for conn in held:
            await small_pool.release(conn)
    assert await small_pool.fetchval("SELECT 1") == 1  # recovered: connections came back


async def test_connection_terminated_by_the_server_mid_query(small_pool):
    """pg_terminate_backend (an admin, a restarted server, a killed backend) while a query runs:
    that query fails with the server's own words, and the pool replaces the connection.
    (Terminated while idle, asyncpg's pool detaches the connection first, and the next call says
    'connection has been released back to the pool', a less helpful message.)"""
    async with small_pool.acquire() as victim:
        pid = victim.get_server_pid()
        query = asyncio.create_task(victim.execute("SELECT pg_sleep(60)"))
        await until(lambda: _sleepers(small_pool, 1))
        assert await small_pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        # asyncpg 0.32: ConnectionDoesNotExistError("connection was closed in the middle of
        # operation: terminating connection due to administrator command").
        dead = (asyncpg.ConnectionDoesNotExistError, asyncpg.AdminShutdownError)
        with pytest.raises(dead, match="terminating connection due to administrator command"):
            await query
    async with small_pool.acquire() as a, small_pool.acquire() as b:
        assert pid not in (a.get_server_pid(), b.get_server_pid())
        assert [await a.fetchval("SELECT 1"), await b.fetchval("SELECT 2")] == [1, 2]


async def test_cancelled_task_holding_a_connection_gives_it_back_clean(small_pool):
    started = asyncio.Event()
    pids = []

    async def slow_query():
        async with small_pool.acquire() as conn:
            pids.append(conn.get_server_pid())
            started.set()
            await conn.execute("SELECT pg_sleep(60)")

    task = asyncio.create_task(slow_query())
    await started.wait()
    await until(lambda: _sleepers(small_pool, 1))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # asyncpg cancelled the query on the server too, and the connection returned to the pool,
    # clean: both of the pool's connections are usable, none is stuck in pg_sleep.
    await until(lambda: _sleepers(small_pool, 0))
    async with small_pool.acquire() as a, small_pool.acquire() as b:
        assert pids[0] in (a.get_server_pid(), b.get_server_pid())  # reused, not replaced
        assert [await a.fetchval("SELECT 1"), await b.fetchval("SELECT 2")] == [1, 2]
        assert not a.is_in_transaction() and not b.is_in_transaction()


async def _sleepers(pool: asyncpg.Pool, n: int) -> bool:
    return await sleeping(pool) == n


async def test_statement_timeout_fails_the_query_not_the_connection(db_url):
    pool = await asyncpg.create_pool(
        db_url, min_size=1, max_size=1, timeout=10, server_settings={"statement_timeout": "100ms"}
    )
    try:
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.QueryCanceledError, match="canceling statement due to statement timeout"):
                await conn.execute("SELECT pg_sleep(30)")
            assert await conn.fetchval("SELECT 1") == 1  # same connection, still fine
    finally:
        await pool.close()


async def test_client_side_command_timeout_cancels_the_query(small_pool):
    async with small_pool.acquire() as conn:
        pid = conn.get_server_pid()
        with pytest.raises(asyncio.TimeoutError):
            await conn.execute("SELECT pg_sleep(30)", timeout=0.2)
        assert await conn.fetchval("SELECT 1") == 1
        assert conn.get_server_pid() == pid  # the query was cancelled, the connection kept
