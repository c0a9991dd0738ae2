"""The checks behind conftest.py's fixtures, kept here so that conftest.py reads in one screen.

- ``close_pool``: a connection acquired and never released makes ``pool.close()`` wait forever;
  find it, close the pool by force, and say so.
- ``CommitGuard``: ``db_conn`` rolls back its own transaction, which cannot undo rows that were
  committed meanwhile, by a ``COMMIT`` in the test (even ``COMMIT; BEGIN``, after which the
  connection looks as if it were still in the transaction) or through another connection
  (``db_pool``). The guard finds such rows when the test ends, deletes them, and says so,
  at the test that wrote them instead of at the next one.
"""

from __future__ import annotations

import asyncio

import asyncpg

from .migrate import empty_tables

POOL_CLOSE_TIMEOUT = 10  # seconds; closing waits for connections that are still running a query
TRUNCATE_LOCK_TIMEOUT = "5s"  # another connection holding a lock must not turn cleanup into a hang
XID_RANGE = 2**32  # xmin is a 32-bit transaction id that wraps around


async def close_pool(pool: asyncpg.Pool) -> str | None:
    """Close ``pool`` within a bounded time; return what went wrong, as a sentence, or None."""
    in_use = pool.get_size() - pool.get_idle_size()
    if in_use:
        pool.terminate()
        return (
            "coursedb: a connection was never returned to the pool (pool.acquire() without release; "
            "use `async with pool.acquire() as conn:`), so the pool was closed by force."
        )
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT)
    except asyncio.TimeoutError:
        pool.terminate()
        return f"coursedb: the pool did not close within {POOL_CLOSE_TIMEOUT} s, so it was closed by force."
    return None


async def empty_after_pool_closed(db_url: str) -> str:
    """The test closed db_committed (the session's pool): empty the tables over a connection of our own."""
    conn = await asyncpg.connect(db_url)
    try:
        await empty_tables(conn)
    finally:
        await conn.close()
    return (
        "coursedb: the test closed db_committed, which is the session's pool (db_pool), so later tests in this "
        "run cannot use it; the tables were emptied anyway. Leave closing the pool to the fixture."
    )


class CommitGuard:
    """Watches one ``db_conn`` transaction for work that outlives its rollback."""

    def __init__(self, conn: asyncpg.Connection, first_xid: int) -> None:
        self.conn = conn
        self.first_xid = first_xid

    @classmethod
    async def start(cls, conn: asyncpg.Connection) -> CommitGuard:
        """Call right after the transaction started."""
        # A setting local to this transaction marks it (gone after COMMIT; BEGIN), and the first
        # transaction id not handed out yet: whatever commits from now on has at least this id.
        row = await conn.fetchrow(
            "SELECT set_config('coursedb.db_conn', 'open', true),"
            " pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS first_xid"
        )
        return cls(conn, row["first_xid"] % XID_RANGE)

    def closed_by_test(self) -> bool:
        """Did the test close db_conn? On a pooled connection, close() hands it back to the pool."""
        try:
            return self.conn.is_closed()
        except asyncpg.InterfaceError:
            return True  # "connection has been released back to the pool"

    async def after_close(self, pool: asyncpg.Pool) -> str:
        """The test closed db_conn: its open transaction died with it; clean up what was committed."""
        async with pool.acquire() as other:
            leftovers = await CommitGuard(other, self.first_xid).leftovers(ended_by_test=False)
        message = (
            "coursedb: the test closed db_conn; the fixture owns that connection and rolls it back after the test, "
            "so leave closing it to the fixture."
        )
        return message + (" " + leftovers.removeprefix("coursedb: ") if leftovers else "")

    async def transaction_ended(self) -> bool:
        """Before the rollback: did the test end our transaction (COMMIT, ROLLBACK, END ...)?"""
        if not self.conn.is_in_transaction():
            return True
        try:
            return await self.conn.fetchval("SELECT current_setting('coursedb.db_conn', true)") != "open"
        except asyncpg.PostgresError:
            return False  # the transaction is aborted by an error; whose it is cannot be asked now

    async def leftovers(self, ended_by_test: bool) -> str | None:
        """After the rollback: delete committed rows, and return the sentence that explains them."""
        committed = await self._committed_rows()
        if committed:
            try:
                async with self.conn.transaction():
                    await self.conn.execute(f"SET LOCAL lock_timeout = '{TRUNCATE_LOCK_TIMEOUT}'")
                    await empty_tables(self.conn)
                cleaned = "db_conn deleted them, so the next test starts clean"
            except asyncpg.LockNotAvailableError:
                cleaned = "db_conn could not delete them (another connection holds a lock on the tables)"
        if ended_by_test:
            leaked = f"rows it wrote were committed for real; {cleaned}" if committed else "nothing leaked this time"
            return (
                "coursedb: the test ended db_conn's transaction (COMMIT or ROLLBACK, perhaps followed by BEGIN), "
                f"so {leaked}. Use `async with conn.transaction():` instead of transaction statements."
            )
        if committed:
            return (
                "coursedb: rows written during this test were committed (through another connection such as "
                f"db_pool, or by a COMMIT in the test), which db_conn's rollback cannot undo; {cleaned}. "
                "Write through db_conn, or use db_committed for code that must commit."
            )
        return None

    async def _committed_rows(self) -> list[str]:
        """The course tables holding rows committed since the test began (inserted or updated)."""
        tables = await self.conn.fetch(
            "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        if not tables:
            return []
        # xmin is the id of the transaction that wrote a row version; ids below 3 are special
        # (frozen); "at least first_xid" is compared modulo 2**32, as PostgreSQL itself does.
        newer = f"xmin::text::bigint >= 3 AND (xmin::text::bigint - $1 + {XID_RANGE}) % {XID_RANGE} < {XID_RANGE // 2}"
        checks = ", ".join(f"EXISTS (SELECT FROM {t['name']} WHERE {newer})" for t in tables)
        found = await self.conn.fetchrow(f"SELECT {checks}", self.first_xid)
        return [t["name"] for t, committed in zip(tables, found, strict=True) if committed]
