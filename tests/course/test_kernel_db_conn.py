"""db_conn catches what it promises, in a real kernel: rows committed during a test (a COMMIT in
the test, even ``COMMIT; BEGIN``, or writes through db_pool) fail THAT test with an explanation,
and are deleted, so the next test starts clean instead of failing for someone else's rows."""

from __future__ import annotations

import re

import pytest

from tests.helpers.kernel import SETUP, Kernel

CELL = """%%ipytest
async def test_commits_then_begins(db_conn):
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada')")
    await db_conn.execute("COMMIT; BEGIN")


async def test_after_the_commit(db_conn):
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 0


async def test_writes_through_the_pool(db_conn, db_pool):
    await db_pool.execute("INSERT INTO users (email, name) VALUES ('bob@example.com', 'Bob')")


async def test_after_the_pool_write(db_conn):
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 0


async def test_rolls_back_by_itself(db_conn):
    await db_conn.execute("ROLLBACK")


async def test_clean_test(db_conn):
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('cy@example.com', 'Cy')")
"""


@pytest.fixture(scope="module")
def report() -> str:
    with Kernel() as kernel:
        assert kernel.run(SETUP).status == "ok"
        out = kernel.run(CELL, timeout=120)
        assert out.status == "error"  # the cell is red
        return out.stdout


def errors_at_teardown(report: str) -> dict[str, str]:
    """test name -> the message of its teardown error."""
    found = re.findall(r"_+ ERROR at teardown of (\w+) _+\n(.*?)\n(?=_{3}|={3})", report, flags=re.DOTALL)
    return {name: message for name, message in found}


def test_commit_then_begin_fails_the_test_that_did_it(report):
    message = errors_at_teardown(report)["test_commits_then_begins"]
    assert "ended db_conn's transaction" in message
    assert "rows it wrote were committed for real; db_conn deleted them" in message


def test_pool_writes_fail_the_test_that_did_them(report):
    message = errors_at_teardown(report)["test_writes_through_the_pool"]
    assert "committed (through another connection such as db_pool" in message
    assert "db_conn deleted them" in message


def test_a_rollback_in_the_test_is_reported_too(report):
    assert "nothing leaked this time" in errors_at_teardown(report)["test_rolls_back_by_itself"]


def test_only_the_offending_tests_fail(report):
    assert set(errors_at_teardown(report)) == {
        "test_commits_then_begins",
        "test_writes_through_the_pool",
        "test_rolls_back_by_itself",
    }
    assert "FAILED" not in report  # the tests after them start clean: none fails for their rows
    assert re.search(r"^6 passed, 3 errors in ", report, flags=re.MULTILINE), report
