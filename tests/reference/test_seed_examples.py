"""Every test from the article the course started from, corrected where it was wrong.

Each corrected test says in its docstring what the article claimed and what is true.
"""

import asyncio
import json
import time

import asyncpg
import pytest


async def add_user(conn, email="test@example.com", name="Test User") -> int:
    return await conn.fetchval("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, name)


async def test_create_user(db_conn):
    await add_user(db_conn)
    row = await db_conn.fetchrow("SELECT * FROM users WHERE email = $1", "test@example.com")
    assert row["name"] == "Test User"
    assert row["email"] == "test@example.com"
    assert row["id"] is not None


async def test_fetch_multiple_rows(db_conn):
    for i in range(5):
        await add_user(db_conn, f"user{i}@example.com", "User")
    rows = await db_conn.fetch("SELECT email FROM users ORDER BY email")
    assert len(rows) == 5  # holds only because no other test's rows survive: isolation
    assert rows[0]["email"] == "user0@example.com"


async def test_rows_are_records_not_dicts(db_conn):
    row = await db_conn.fetchrow("SELECT 1 AS a, 2 AS b")
    assert isinstance(row, asyncpg.Record)
    assert not isinstance(row, dict)
    assert row["a"] == row[0] == 1
    assert dict(row) == {"a": 1, "b": 2}


async def test_pool_handles_concurrent_requests(db_pool):
    async def fetch_one():
        async with db_pool.acquire() as conn:
            return await conn.fetchval("SELECT pg_backend_pid()")

    pids = await asyncio.gather(*(fetch_one() for _ in range(20)))
    assert len(pids) == 20
    assert 1 < len(set(pids)) <= db_pool.get_max_size()  # really concurrent, really bounded


async def test_pool_releases_connections_after_error(db_pool):
    """The article compared idle sizes, which passes even if a connection leaks (idle
    can only grow while the pool fills). Count the connections in use instead."""
    in_use = db_pool.get_size() - db_pool.get_idle_size()
    with pytest.raises(asyncpg.UndefinedTableError):
        async with db_pool.acquire() as conn:
            await conn.fetch("SELECT * FROM nonexistent_table")
    assert db_pool.get_size() - db_pool.get_idle_size() == in_use


async def test_transaction_rollback_on_error(db_conn):
    """The article's version passes 100.00 as a float to NUMERIC (asyncpg wants Decimal
    or str there for exact values) and swallows the error with try/except-pass."""
    user_id = await add_user(db_conn, "tx@test.com", "TX User")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with db_conn.transaction():
            await db_conn.execute("INSERT INTO orders (user_id, total) VALUES ($1, $2)", user_id, "100.00")
            await db_conn.execute("INSERT INTO orders (user_id, total) VALUES ($1, $2)", 99999, "50.00")
    count = await db_conn.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", user_id)
    assert count == 0
    assert await db_conn.fetchval("SELECT count(*) FROM users WHERE id = $1", user_id) == 1


async def test_custom_json_codec(db_pool):
    """The article set the codec on one acquired connection and passed a str through
    json.dumps: the str is double-encoded and comes back as a str. The pool's init=
    registers the codec on every connection; pass a dict."""
    async with db_pool.acquire() as conn:
        await conn.execute("CREATE TEMP TABLE json_test (data JSONB)")
        try:
            await conn.execute("INSERT INTO json_test VALUES ($1)", {"key": "value"})
            row = await conn.fetchrow("SELECT data FROM json_test")
        finally:
            await conn.execute("DROP TABLE json_test")
    assert isinstance(row["data"], dict)
    assert row["data"]["key"] == "value"


async def test_json_string_through_codec_is_double_encoded(db_conn):
    """What the article's test really does: a str through json.dumps becomes a JSON string."""
    value = await db_conn.fetchval("SELECT $1::jsonb", '{"key": "value"}')
    assert value == '{"key": "value"}'
    assert isinstance(value, str)
    assert await db_conn.fetchval("SELECT jsonb_typeof($1::jsonb)", '{"key": "value"}') == "string"


async def test_codec_on_one_connection_is_not_on_others(db_url):
    """A codec belongs to a connection. Set it on one, and the pool's other connections
    still return json as str."""
    pool = await asyncpg.create_pool(db_url, min_size=2, max_size=2)
    try:
        async with pool.acquire() as first, pool.acquire() as second:
            await first.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
            assert await first.fetchval("SELECT '{\"a\": 1}'::jsonb") == {"a": 1}
            assert await second.fetchval("SELECT '{\"a\": 1}'::jsonb") == '{"a": 1}'
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("email", "name", "expected_name"),
    [
        ("alice@test.com", "Alice", "Alice"),
        ("BOB@TEST.COM", "Bob", "Bob"),
        ("charlie+tag@test.com", "Charlie", "Charlie"),
    ],
)
async def test_user_creation_variants(db_conn, email, name, expected_name):
    await add_user(db_conn, email, name)
    row = await db_conn.fetchrow("SELECT name FROM users WHERE email = $1", email)
    assert row["name"] == expected_name


async def test_user_lookup_uses_an_index(db_conn):
    """The article timed 100 lookups of a one-row table against 0.5 s: a one-row table is
    read by a sequential scan whether or not an index exists, so that test cannot see a
    missing index. Check the plan at a realistic row count instead."""
    await db_conn.execute(
        "INSERT INTO users (email, name) SELECT 'u' || i || '@example.com', 'U' FROM generate_series(1, 5000) i"
    )
    await db_conn.execute("ANALYZE users")
    # The pool's json codec already decodes EXPLAIN's JSON into Python lists and dicts.
    plan = await db_conn.fetchval("EXPLAIN (FORMAT JSON) SELECT * FROM users WHERE email = $1", "u42@example.com")
    node = plan[0]["Plan"]
    assert node["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")


async def test_one_row_timing_cannot_see_a_missing_index(db_conn):
    """No timing assertion here: we show the plan the article's timed query really gets."""
    await db_conn.execute("CREATE TEMP TABLE people (email TEXT, name TEXT)")  # no index at all
    await db_conn.execute("INSERT INTO people VALUES ('perf@test.com', 'Perf')")
    started = time.perf_counter()
    for _ in range(100):
        await db_conn.fetchrow("SELECT * FROM people WHERE email = $1", "perf@test.com")
    assert time.perf_counter() - started > 0  # it runs fine: a timing bound would pass too
    plan = await db_conn.fetchval("EXPLAIN (FORMAT JSON) SELECT * FROM people WHERE email = 'x'")
    assert plan[0]["Plan"]["Node Type"] == "Seq Scan"
