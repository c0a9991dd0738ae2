"""A test that closes a fixture's connection or pool fails with one sentence, and leaves no rows behind."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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
    (tmp_path / "conftest.py").write_text((ROOT / "conftest.py").read_text())
    (tmp_path / "test_closing.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\n"
        "asyncio_default_test_loop_scope = session\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--tb=line", "-rN"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != "CI"}, "PYTHONPATH": str(ROOT)},  # CI=1 lengthens reports
    )
    out = result.stdout
    assert "3 errors" in out and "failed" not in out, out[-3000:]
    assert out.count("coursedb: the test closed db_conn; the fixture owns that connection") == 2, out[-3000:]
    assert "rows written during this test were committed" in out, out[-3000:]  # the COMMIT before close()
    assert "coursedb: the test closed db_committed, which is the session's pool" in out, out[-3000:]
    assert "InterfaceError" not in out, out[-3000:]
