"""db_conn's guard undoes exactly what a test committed: the learner's own rows survive it.

A notebook commits rows of its own outside any test (here: the first test, which stands for
such a cell, through a connection of its own). Tests then commit through db_conn (COMMIT;
BEGIN) or db_pool: rows they add are deleted, rows they change or delete are put back, each
such test fails with one sentence saying so, and the learner's rows are there afterwards,
exactly as they were. A test that only changes its session (RESET ALL, a codec) is not accused
of committing; COMMIT AND CHAIN is. Run as an inner pytest with the repository's conftest.py.
"""

from tests.helpers import run_with_course_fixtures

TESTS = """
import asyncpg

LEARNER = [("learner@example.com", "Learner"), ("kept@example.com", "Kept")]


async def rows(db_url):
    conn = await asyncpg.connect(db_url)
    try:
        users = await conn.fetch("SELECT id, email, name, created_at FROM users ORDER BY id")
        orders = await conn.fetch("SELECT id, user_id, total, status, created_at FROM orders ORDER BY id")
        return [tuple(r) for r in users], [tuple(r) for r in orders]
    finally:
        await conn.close()


async def test_0_the_notebook_commits_rows_of_its_own(db_url):
    conn = await asyncpg.connect(db_url)
    try:
        await conn.executemany("INSERT INTO users (email, name) VALUES ($1, $2)", LEARNER)
        await conn.execute("INSERT INTO orders (user_id, total) SELECT id, 12.5 FROM users")
    finally:
        await conn.close()
    with open("learner_rows.txt", "w") as f:
        f.write(repr(await rows(db_url)))


async def test_1_only_inserts_then_commits(db_conn):
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('test@example.com', 'Test'); COMMIT; BEGIN")


async def test_2_inserts_changes_and_deletes_then_commits(db_conn):
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('other@example.com', 'Other')")
    await db_conn.execute("UPDATE users SET name = 'Changed' WHERE email = 'learner@example.com'")
    await db_conn.execute("DELETE FROM users WHERE email = 'kept@example.com'")  # and, by cascade, its order
    await db_conn.execute("COMMIT")


async def test_3_truncates_through_the_pool(db_conn, db_pool):
    await db_pool.execute("TRUNCATE users CASCADE")


async def test_4_the_learners_rows_are_as_they_were(db_url):
    with open("learner_rows.txt") as f:
        assert repr(await rows(db_url)) == f.read()


async def test_5_and_new_rows_get_the_next_ids(db_conn):
    new = await db_conn.fetchval("INSERT INTO users (email, name) VALUES ('n@example.com', 'N') RETURNING id")
    assert new == 3


async def test_6_resets_its_session_and_commits_nothing(db_conn):
    await db_conn.execute("SET LOCAL statement_timeout = '5s'; SET TIME ZONE 'Europe/Berlin'; RESET ALL")
    await db_conn.set_type_codec("timestamptz", schema="pg_catalog", encoder=str, decoder=str, format="text")


async def test_7_commits_and_chains(db_conn):
    await db_conn.execute("COMMIT AND CHAIN")
"""


def test_the_guard_undoes_what_a_test_committed_and_nothing_else(tmp_path):
    result = run_with_course_fixtures(tmp_path, "test_guard.py", TESTS)
    out = result.stdout
    assert "8 passed, 4 errors" in out, out[-4000:]
    said = [line for line in out.splitlines() if line.startswith("coursedb: ")]
    assert said[0] == (
        "coursedb: the test ended db_conn's transaction (COMMIT or ROLLBACK, perhaps followed by BEGIN), so rows it "
        "wrote were committed for real; db_conn deleted them, so the next test starts clean. Use `async with "
        "conn.transaction():` instead of transaction statements."
    )
    assert (
        "so rows it wrote were committed for real; db_conn deleted the rows it added and put back as they were"
        in (said[1])
    )
    assert "(orders id=2; users id=1, id=2)" in said[1], said[1]
    assert "rows written during this test were committed (through another connection such as db_pool" in said[2]
    assert "put back as they were the rows it changed or deleted (orders id=1, id=2; users id=1, id=2)" in said[2]
    assert said[3].startswith("coursedb: the test ended db_conn's transaction") and "nothing leaked" in said[3]
    assert len(said) == 4, said  # RESET ALL, a time zone and a codec changed the session, but committed nothing
    assert all(line.endswith(".") and line.count(". ") == 1 for line in said), said  # one sentence and the advice
