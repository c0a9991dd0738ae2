"""What rollback isolation does, what it does not, and where the article got it wrong."""

import asyncpg
import pytest

import coursedb


@pytest.mark.parametrize("attempt", [1, 2, 3])
async def test_each_test_starts_with_empty_tables(db_conn, attempt):
    """Run three times with the same email: if any run's insert survived, the next would
    hit the UNIQUE constraint. Turning the fixture's rollback into a commit fails this."""
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 0
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('same@example.com', $1)", f"run {attempt}")


async def test_raw_commit_inside_the_test_is_permanent(db_pool):
    """The article: 'tests can even call COMMIT - the outer rollback undoes it'. It does not:
    COMMIT ends the outer transaction, the rollback has nothing to undo."""
    async with db_pool.acquire() as conn:
        outer = conn.transaction()
        await outer.start()
        await conn.execute("INSERT INTO users (email, name) VALUES ('leak@example.com', 'Leak')")
        await conn.execute("COMMIT")
        assert not conn.is_in_transaction()
        await outer.rollback()  # the server only warns: there is no transaction in progress
        try:
            assert await conn.fetchval("SELECT count(*) FROM users WHERE email = 'leak@example.com'") == 1
        finally:
            await coursedb.empty_tables(conn)


async def test_begin_inside_a_transaction_is_a_warning_not_an_error(db_conn):
    """The article: 'if your code calls BEGIN inside the test, you'll get an error'.
    PostgreSQL answers with a WARNING and carries on inside the same transaction."""
    messages = []

    def collect(conn, message):
        messages.append(message)

    db_conn.add_log_listener(collect)
    try:
        await db_conn.execute("BEGIN")
    finally:
        db_conn.remove_log_listener(collect)
    assert [m.severity for m in messages] == ["WARNING"]
    assert str(messages[0]) == "there is already a transaction in progress"
    assert db_conn.is_in_transaction()


async def test_nested_transaction_is_a_savepoint(db_conn):
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('outer@example.com', 'Outer')")
    with pytest.raises(asyncpg.UniqueViolationError):
        async with db_conn.transaction():  # nested: SAVEPOINT, not BEGIN
            await db_conn.execute("INSERT INTO users (email, name) VALUES ('inner@example.com', 'Inner')")
            await db_conn.execute("INSERT INTO users (email, name) VALUES ('outer@example.com', 'Dup')")
    emails = [r["email"] for r in await db_conn.fetch("SELECT email FROM users ORDER BY email")]
    assert emails == ["outer@example.com"]  # only the savepoint's work was undone


async def test_rollback_does_not_reset_sequences(db_pool):
    """Rows roll back, sequence values do not: never assert an id of 1."""
    ids = []
    for _ in range(2):
        async with db_pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            ids.append(await conn.fetchval("INSERT INTO users (email, name) VALUES ('seq@x', 'S') RETURNING id"))
            await tx.rollback()
    assert ids[1] > ids[0]


async def test_now_is_frozen_for_the_whole_transaction(db_conn):
    """now() is the transaction's start time: inside db_conn it never moves."""
    first = await db_conn.fetchval("SELECT now()")
    await db_conn.execute("SELECT pg_sleep(0.01)")
    assert await db_conn.fetchval("SELECT now()") == first
    assert await db_conn.fetchval("SELECT clock_timestamp()") > first


async def test_other_connections_cannot_see_uncommitted_rows(db_conn, db_pool):
    """App code that takes its own pool connection does not see the test's rows."""
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('hidden@example.com', 'H')")
    async with db_pool.acquire() as other:
        assert await other.fetchval("SELECT count(*) FROM users WHERE email = 'hidden@example.com'") == 0


async def test_committed_rows_are_visible_everywhere(db_committed):
    async with db_committed.acquire() as writer:
        await writer.execute("INSERT INTO users (email, name) VALUES ('shared@example.com', 'S')")
    async with db_committed.acquire() as reader:
        assert await reader.fetchval("SELECT count(*) FROM users WHERE email = 'shared@example.com'") == 1


async def test_db_committed_left_nothing_behind(db_conn):
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 0


async def test_connection_goes_back_clean(db_pool):
    async with db_pool.acquire() as conn:
        assert not conn.is_in_transaction()
