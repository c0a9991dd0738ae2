"""A test that closes a fixture's connection or pool fails with one sentence, and leaves no rows behind."""

from tests.helpers import run_with_course_fixtures

TESTS = """
import asyncpg


async def test_closes_db_conn(db_conn):
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('a@example.com', 'A')")
    await db_conn.close()


async def test_commits_then_closes_db_conn(db_conn):
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('b@example.com', 'B'); COMMIT")
    await db_conn.close()


async def test_next_test_starts_clean(db_conn):
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 0


async def test_closes_db_committed(db_committed):
    await db_committed.execute("INSERT INTO users (email, name) VALUES ('c@example.com', 'C')")
    await db_committed.close()


async def test_no_rows_left_after_the_pool_was_closed(db_url):
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await conn.close()
"""


def test_closing_a_fixture_is_one_sentence_and_nothing_leaks(tmp_path):
    result = run_with_course_fixtures(tmp_path, "test_closing.py", TESTS)
    out = result.stdout
    assert "3 errors" in out and "failed" not in out, out[-3000:]
    assert out.count("coursedb: the test closed db_conn; the fixture owns that connection") == 2, out[-3000:]
    assert "rows written during this test were committed" in out, out[-3000:]  # the COMMIT before close()
    assert "coursedb: the test closed db_committed, which is the session's pool" in out, out[-3000:]
    assert "InterfaceError" not in out, out[-3000:]
