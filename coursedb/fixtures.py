"""The checks behind conftest.py's fixtures, kept here so that conftest.py reads in one screen.

- ``close_pool``: a connection acquired and never released makes ``pool.close()`` wait forever;
  find it, close the pool by force, and say so.
- ``CommitGuard``: ``db_conn`` rolls back its own transaction, which cannot undo rows that were
  committed meanwhile, by a ``COMMIT`` in the test (even ``COMMIT; BEGIN``, after which the
  connection looks as if it were still in the transaction) or through another connection
  (``db_pool``). The guard notes the course tables as the test found them (``Before``); when
  the test ends it deletes the rows the test added, puts back the rows it changed or deleted,
  and says so, at the test that wrote them instead of at the next one. Rows the learner
  committed before the test (in a notebook, outside any test) stay as they were.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from .migrate import empty_tables

POOL_CLOSE_TIMEOUT = 10  # seconds; closing waits for connections that are still running a query
TRUNCATE_LOCK_TIMEOUT = "5s"  # another connection holding a lock must not turn cleanup into a hang
XID_RANGE = 2**32  # xmin is a 32-bit transaction id that wraps around
# Rows per table the guard copies when a test starts, to put back what the test commits; a bigger
# table is left alone, and what was committed in it is named instead.
BEFORE_ROWS = 10_000
NAMED = 10  # rows named one by one in a message; the rest are counted
_STARTED = "extract(epoch FROM transaction_timestamp())::text"  # the same spelling whatever the session's settings
_TABLES = (
    "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
    " WHERE schemaname = 'public' AND tablename <> 'schema_migrations' ORDER BY 1"
)


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
        emptied = [_short(r[0]) for r in await conn.fetch(_TABLES)]
        await empty_tables(conn)
    finally:
        await conn.close()
    return (
        "coursedb: the test closed db_committed, which is the session's pool (db_pool), so later tests in this "
        f"run cannot use it; its tables ({', '.join(emptied)}) were emptied anyway. Leave closing the pool to "
        "the fixture."
    )


@dataclass
class Before:
    """The course tables as a test found them: each table's rows (as JSON), and the sequences."""

    rows: dict[str, list[str]]  # table -> its rows; only tables of at most BEFORE_ROWS rows
    too_big: set[str]  # tables with more rows than that: not copied
    sequences: dict[str, int | None]  # sequence -> last_value (None: never used)

    @classmethod
    async def take(cls, conn: asyncpg.Connection) -> Before:
        """Every row of every course table (up to BEFORE_ROWS + 1 each), and the sequences.

        Call it outside the test's transaction: reading a table inside would keep a lock on it
        for the whole test, and a TRUNCATE or ALTER through another connection would wait for ever.
        """
        tables = [r[0] for r in await conn.fetch(_TABLES)]
        parts = [
            f"(SELECT {i} AS t, to_jsonb(x)::text AS row FROM {table} x LIMIT {BEFORE_ROWS + 1})"
            for i, table in enumerate(tables)
        ]
        parts.append(
            "(SELECT -1, json_build_array(format('%I.%I', schemaname, sequencename), last_value)::text"
            " FROM pg_sequences WHERE schemaname = 'public')"
        )
        rows: dict[str, list[str]] = {table: [] for table in tables}
        sequences: dict[str, int | None] = {}
        for record in await conn.fetch(" UNION ALL ".join(parts)):
            if record["t"] < 0:
                name, last = json.loads(record["row"])
                sequences[name] = last
            else:
                rows[tables[record["t"]]].append(record["row"])
        too_big = {table for table, found in rows.items() if len(found) > BEFORE_ROWS}
        return cls({t: r for t, r in rows.items() if t not in too_big}, too_big, sequences)


@dataclass
class Repair:
    """What the guard found committed, and what it did about it."""

    added: dict[str, list[str]] = field(default_factory=dict)  # table -> rows the test added (named)
    put_back: dict[str, list[str]] = field(default_factory=dict)  # table -> rows it changed or deleted
    left: list[str] = field(default_factory=list)  # what could not be put back, each named exactly
    failed: str | None = None  # why the repair itself failed (a lock, a constraint), if it did

    @property
    def found(self) -> bool:
        return bool(self.added or self.put_back or self.left)


class CommitGuard:
    """Watches one ``db_conn`` transaction for work that outlives its rollback."""

    def __init__(self, conn: asyncpg.Connection, first_xid: int, before: Before, started: str | None = None) -> None:
        self.conn = conn
        self.first_xid = first_xid
        self.before = before
        self.started = started

    @classmethod
    async def start(cls, conn: asyncpg.Connection, before: Before) -> CommitGuard:
        """Call right after the transaction started, with the tables as they were just before."""
        # The transaction's start time marks it: a new transaction (COMMIT; BEGIN, COMMIT AND CHAIN)
        # starts at a later statement, and nothing a test may change (SET, RESET ALL, a codec, the
        # time zone) touches it or its spelling. And the first transaction id not handed out yet:
        # whatever commits from now on has at least this id.
        row = await conn.fetchrow(
            f"SELECT {_STARTED} AS started, pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS first_xid"
        )
        return cls(conn, row["first_xid"] % XID_RANGE, before, row["started"])

    def closed_by_test(self) -> bool:
        """Did the test close db_conn? On a pooled connection, close() hands it back to the pool."""
        try:
            return self.conn.is_closed()
        except asyncpg.InterfaceError:
            return True  # "connection has been released back to the pool"

    async def after_close(self, pool: asyncpg.Pool) -> str:
        """The test closed db_conn: its open transaction died with it; clean up what was committed."""
        async with pool.acquire() as other:
            leftovers = await CommitGuard(other, self.first_xid, self.before).leftovers(ended_by_test=False)
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
            return await self.conn.fetchval(f"SELECT {_STARTED}") != self.started
        except asyncpg.PostgresError:
            return False  # the transaction is aborted by an error; whose it is cannot be asked now

    async def leftovers(self, ended_by_test: bool) -> str | None:
        """After the rollback: undo what was committed, and return the sentence that explains it."""
        repair = await self.repair()
        done = _describe(repair)
        if ended_by_test:
            leaked = f"rows it wrote were committed for real; {done}" if repair.found else "nothing leaked this time"
            return (
                "coursedb: the test ended db_conn's transaction (COMMIT or ROLLBACK, perhaps followed by BEGIN), "
                f"so {leaked}. Use `async with conn.transaction():` instead of transaction statements."
            )
        if repair.found:
            return (
                "coursedb: rows written during this test were committed (through another connection such as "
                f"db_pool, or by a COMMIT in the test), which db_conn's rollback cannot undo; {done}. "
                "Write through db_conn, or use db_committed for code that must commit."
            )
        return None

    # --- finding and undoing what was committed ---------------------------------------------

    async def repair(self) -> Repair:
        repair = Repair()
        touched = await self._touched_tables()
        if not touched:
            return repair
        now = await self._rows_now(touched)
        keys = await self._primary_keys()
        plan = []  # (table, rows to delete, rows to update, rows to insert): see _diff
        for table in touched:
            if table not in now:
                repair.left.append(f"table {_short(table)} was dropped by the test")
            elif table in self.before.too_big:
                added = [row for row, _, newer in now[table] if newer]
                repair.left += [
                    f"{_short(table)} held more than {BEFORE_ROWS} rows, too many to copy before every test: "
                    f"{_named(table, added, keys.get(table))} stay"
                ]
            elif table not in self.before.rows:
                repair.left.append(f"table {_short(table)}, created by the test, stays")
            else:
                plan.append((table, *_diff(self.before.rows[table], now[table], keys.get(table))))
        for table, deletes, updates, inserts in plan:
            if deletes:
                repair.added[table] = [_name(row, keys.get(table)) for row, _ in deletes]
            if updates or inserts:
                repair.put_back[table] = [_name(row, keys.get(table)) for row in [*(r for _, r in updates), *inserts]]
        try:
            async with self.conn.transaction():
                await self.conn.execute(f"SET LOCAL lock_timeout = '{TRUNCATE_LOCK_TIMEOUT}'")
                await self._apply(plan, keys, sequences=not repair.left)
        except (asyncpg.PostgresError, ValueError) as exc:
            repair.failed = f"{type(exc).__name__}: {exc}"
        return repair

    async def _touched_tables(self) -> list[str]:
        """The course tables with rows committed since the test began, or fewer rows than it found,
        and the tables that appeared or disappeared."""
        tables = [r[0] for r in await self.conn.fetch(_TABLES)]
        known = set(self.before.rows) | self.before.too_big
        touched = [t for t in known if t not in tables]  # dropped
        touched += [t for t in tables if t not in known]  # created
        checked = [t for t in tables if t in known]
        if checked:
            # xmin is the id of the transaction that wrote a row version; ids below 3 are special
            # (frozen); "at least first_xid" is compared modulo 2**32, as PostgreSQL itself does.
            capped = BEFORE_ROWS + 1
            columns = ", ".join(
                f"EXISTS (SELECT FROM {t} WHERE {_NEWER}), (SELECT count(*) FROM (SELECT FROM {t} LIMIT {capped}) c)"
                for t in checked
            )
            found = await self.conn.fetchrow(f"SELECT {columns}", self.first_xid)
            for i, table in enumerate(checked):
                newer, count = found[2 * i], found[2 * i + 1]
                if newer or (table in self.before.rows and count != len(self.before.rows[table])):
                    touched.append(table)
        return sorted(touched)

    async def _rows_now(self, tables: list[str]) -> dict[str, list[tuple[str, str, bool]]]:
        """Each existing table's rows now: (row as JSON, ctid, committed during the test); of a table
        too big to copy, only the rows committed during the test."""
        existing = [r[0] for r in await self.conn.fetch(_TABLES)]
        wanted = [t for t in tables if t in existing]
        now: dict[str, list[tuple[str, str, bool]]] = {t: [] for t in wanted}
        if not wanted:
            return now
        parts = [
            f"(SELECT {i} AS t, to_jsonb(x)::text AS row, ctid::text AS ctid, {_NEWER} AS newer FROM {t} x"
            + (f" WHERE {_NEWER})" if t in self.before.too_big else ")")  # a big table: only what was committed
            for i, t in enumerate(wanted)
        ]
        for record in await self.conn.fetch(" UNION ALL ".join(parts), self.first_xid):
            now[wanted[record["t"]]].append((record["row"], record["ctid"], record["newer"]))
        return now

    async def _primary_keys(self) -> dict[str, list[str]]:
        rows = await self.conn.fetch(
            "SELECT format('%I.%I', n.nspname, c.relname) AS t, array_agg(a.attname ORDER BY k.ord) AS cols"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
            " WHERE i.indisprimary AND n.nspname = 'public' GROUP BY 1"
        )
        return {r["t"]: list(r["cols"]) for r in rows}

    async def _apply(self, plan: list, keys: dict[str, list[str]], sequences: bool) -> None:
        """Delete what was added (children first), put changed rows back, insert deleted ones (parents
        first); with ``sequences``, set them back too (not while rows that use their values stay)."""
        order = await self._parents_first([table for table, *_ in plan])
        steps = {table: rest for table, *rest in plan}
        for table in reversed(order):
            for row, ctid in steps[table][0]:
                if table in keys:
                    await self.conn.execute(
                        f"DELETE FROM {table} x WHERE to_jsonb(x) @> $1::text::jsonb", _key(row, keys[table])
                    )
                else:
                    await self.conn.execute(f"DELETE FROM {table} WHERE ctid = $1::tid", ctid)
        for table in order:
            columns = await self._writable_columns(table)
            listed = ", ".join(columns)
            values = f"SELECT {listed} FROM jsonb_populate_record(NULL::{table}, $1::text::jsonb)"
            for key, row in steps[table][1]:
                await self.conn.execute(
                    f"UPDATE {table} x SET ({listed}) = ({values}) WHERE to_jsonb(x) @> $2::text::jsonb",
                    row,
                    key,
                )
            for row in steps[table][2]:
                await self.conn.execute(f"INSERT INTO {table} ({listed}) OVERRIDING SYSTEM VALUE {values}", row)
        for sequence, last in self.before.sequences.items() if sequences else ():
            if last is None:
                await self.conn.execute("SELECT setval($1::regclass, seqstart, false) FROM pg_sequence"
                                        " WHERE seqrelid = $1::regclass", sequence)  # fmt: skip
            else:
                await self.conn.execute("SELECT setval($1::regclass, $2)", sequence, last)

    async def _writable_columns(self, table: str) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = $1::regclass"
            " AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            table,
        )
        return [r[0] for r in rows]

    async def _parents_first(self, tables: list[str]) -> list[str]:
        """``tables`` ordered so that a table comes after the tables its foreign keys point to."""
        edges = await self.conn.fetch(
            "SELECT format('%I.%I', cn.nspname, c.relname) AS child,"
            " format('%I.%I', pn.nspname, p.relname) AS parent FROM pg_constraint k"
            " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace"
            " JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace"
            " WHERE k.contype = 'f'"
        )
        parents = {t: {e["parent"] for e in edges if e["child"] == t and e["parent"] != t} for t in tables}
        order: list[str] = []
        while len(order) < len(tables):
            ready = [t for t in tables if t not in order and parents[t] <= set(order) | (set(parents[t]) - set(tables))]
            if not ready:
                raise ValueError("the tables' foreign keys form a cycle")
            order += sorted(ready)
        return order


_NEWER = f"xmin::text::bigint >= 3 AND (xmin::text::bigint - $1 + {XID_RANGE}) % {XID_RANGE} < {XID_RANGE // 2}"


def _diff(before: list[str], now: list[tuple[str, str, bool]], key: list[str] | None) -> tuple[list, list, list]:
    """What takes a table from ``now`` back to ``before``: rows to delete as (row, ctid), rows to
    update as (key, old row), rows to insert."""
    if key is None:  # no primary key: rows are told apart by their values alone
        missing = Counter(before) - Counter(row for row, _, _ in now)
        extra = Counter(row for row, _, _ in now) - Counter(before)
        deletes = []
        for row, ctid, _ in now:
            if extra[row]:
                extra[row] -= 1
                deletes.append((row, ctid))
        return deletes, [], list(missing.elements())
    old = {_key(row, key): row for row in before}
    new = {_key(found[0], key): found for found in now}
    deletes = [(row, ctid) for k, (row, ctid, _) in new.items() if k not in old]
    updates = [(k, old[k]) for k, (row, _, _) in new.items() if k in old and row != old[k]]
    inserts = [row for k, row in old.items() if k not in new]
    return deletes, updates, inserts


def _key(row: str, key: list[str]) -> str:
    values = json.loads(row)
    return json.dumps({column: values.get(column) for column in key}, sort_keys=True)


def _name(row: str, key: list[str] | None) -> str:
    """A row as a message names it: by its primary key (id=3, or (a=1, b=2)), else by all its values."""
    if key is None:
        return row
    values = json.loads(row)
    named = ", ".join(f"{column}={values.get(column)}" for column in key)
    return named if len(key) == 1 else f"({named})"


def _short(table: str) -> str:
    return table.removeprefix("public.")


def _named(table: str, rows: list[str], key: list[str] | None) -> str:
    shown = [_name(row, key) for row in rows[:NAMED]]
    more = f" and {len(rows) - NAMED} more" if len(rows) > NAMED else ""
    return f"{_short(table)} " + ", ".join(shown) + more


def _describe(repair: Repair) -> str:
    """What the guard did, for the sentence: the usual case (rows added, all deleted) in the fewest words."""
    if not repair.found:
        return ""
    if repair.failed:
        listed = [_named(t, [*repair.added.get(t, []), *repair.put_back.get(t, [])], None)
                  for t in {**repair.added, **repair.put_back}]  # fmt: skip
        return f"db_conn could not undo them ({repair.failed}): " + "; ".join(listed + repair.left)
    said = []
    if repair.added and not repair.put_back and not repair.left:
        return "db_conn deleted them, so the next test starts clean"
    if repair.added:
        said.append("deleted the rows it added")
    if repair.put_back:
        rows = "; ".join(_named(t, r, None) for t, r in repair.put_back.items())
        said.append(f"put back as they were the rows it changed or deleted ({rows})")
    done = f"db_conn {' and '.join(said)}" if said else ""
    if repair.left:
        done += ("; " if done else "") + "db_conn could not put back: " + "; ".join(repair.left)
    return done + (", so the next test finds the tables as this one did" if not repair.left else "")
