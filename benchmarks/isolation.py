"""Per-test isolation strategies, side by side in one run, on the same schema and data.

    .venv/bin/python benchmarks/isolation.py            # full run, ~2-3 minutes
    .venv/bin/python benchmarks/isolation.py --quick    # 10 tables, no preloaded rows, ~10 s

Every "test" does the same small piece of work (insert a user and an order, read them back
with a join) wrapped in one isolation strategy; the time of the whole cycle (fixture setup,
work, fixture teardown) is one sample:

    rollback         pooled connection, BEGIN, work, ROLLBACK (the course's db_conn fixture)
    savepoint        SAVEPOINT, work, ROLLBACK TO SAVEPOINT inside one long outer transaction
    truncate         work committed, then TRUNCATE every table RESTART IDENTITY CASCADE (+ reseed)
    delete           work committed, then DELETE FROM every table (+ reseed)
    template_db      a fresh database per test cloned from a template with pytest-postgresql's
                     own DatabaseJanitor (what its `postgresql` fixture does), connect, work, drop
    template_db_sql  the same clone/drop in plain SQL on one held admin connection
    drop_schema      work committed, then DROP SCHEMA public CASCADE, recreate tables (+ reseed)

Schema: users and orders (as in the course) plus filler tables referencing users, up to
--tables in all (2, 10, 50; 2 is the least the work needs), foreign keys indexed. --rows
seeds users and orders with that many rows each (0, 10 000). Every test must start from
the same data, so truncate, delete and drop_schema re-insert the seed after cleaning;
rollback, savepoint and template databases get it back for free.

Strategies run interleaved in short time slices, so background load on the machine hits
them all alike. Each test inserts the same email into a UNIQUE column, so a strategy that
failed to isolate would make the next test fail: the numbers are of strategies that work.

By default a private embedded server is started (and removed) so other work on the shared
server does not disturb the measurement; --shared uses the course's shared server instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import _common
import asyncpg
from _common import coursedb

try:  # the real peer; needs Python >= 3.11 (see requirements.txt)
    from importlib.metadata import version as _version

    from pytest_postgresql.janitor import DatabaseJanitor

    JANITOR = f"pytest-postgresql {_version('pytest-postgresql')} DatabaseJanitor"
except ImportError:
    DatabaseJanitor = None
    JANITOR = None

from coursedb.databases import owner_record, quote_ident, url_for

STRATEGIES = ["rollback", "savepoint", "truncate", "delete", "template_db", "template_db_sql", "drop_schema"]
TEST_EMAIL = "test@example.com"  # UNIQUE: a leak from the previous test would make this test fail


def schema_sql(tables: int) -> str:
    """users and orders (the course's shape) plus filler tables that reference users, like a real app."""
    if tables < 2:
        raise ValueError("the work needs users and orders: at least 2 tables")
    ddl = [
        "CREATE TABLE users (id SERIAL PRIMARY KEY, email TEXT UNIQUE NOT NULL, name TEXT NOT NULL,"
        " created_at TIMESTAMPTZ NOT NULL DEFAULT now());",
        "CREATE TABLE orders (id SERIAL PRIMARY KEY,"
        " user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
        " total NUMERIC(10, 2) NOT NULL CHECK (total >= 0), created_at TIMESTAMPTZ NOT NULL DEFAULT now());",
        # Index the foreign keys: without one, every deleted user seq-scans each child table
        # and DELETE-based cleanup turns quadratic (measured: tens of seconds per test at 10k rows).
        "CREATE INDEX ON orders (user_id);",
    ]
    for k in range(3, tables + 1):
        ddl.append(
            f"CREATE TABLE extra_{k} (id SERIAL PRIMARY KEY,"
            f" user_id INTEGER REFERENCES users (id) ON DELETE CASCADE, note TEXT);"
            f" CREATE INDEX ON extra_{k} (user_id);"
        )
    return "\n".join(ddl)


def seed_sql(rows: int) -> str:
    """Preloaded rows in the tables the tests touch; ids come from the sequences, whatever they are."""
    if rows == 0:
        return ""
    return (
        f"INSERT INTO users (email, name) SELECT 'seed' || g || '@example.com', 'Seed ' || g"
        f" FROM generate_series(1, {rows}) g;"
        " INSERT INTO orders (user_id, total) SELECT id, (id % 100) + 0.5 FROM users;"
    )


def table_names(tables: int) -> list[str]:
    return ["users", "orders", *(f"extra_{k}" for k in range(3, tables + 1))]


async def work(conn: asyncpg.Connection) -> None:
    """The same small, realistic test body for every strategy."""
    user_id = await conn.fetchval("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", TEST_EMAIL, "Ada")
    await conn.execute("INSERT INTO orders (user_id, total) VALUES ($1, $2)", user_id, Decimal("9.99"))
    row = await conn.fetchrow(
        "SELECT u.email, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1", user_id
    )
    if row is None or row["email"] != TEST_EMAIL:
        raise RuntimeError("the test could not read back its own rows")


class Cell:
    """The databases of one (tables, rows) configuration: a source with schema and seed, one clone per strategy."""

    def __init__(self, admin: asyncpg.Connection, admin_url: str, tables: int, rows: int) -> None:
        self.admin, self.admin_url, self.tables, self.rows = admin, admin_url, tables, rows
        tag = f"{os.getpid()}_{tables}_{rows}"
        # coursedb_ prefix: status lists them and the embedded server's stop removes them if this process dies
        # (no session vouches for them, but their names carry no lock key, so sweeps leave them alone).
        self.source = f"coursedb_bench_src_{tag}"
        self.dbs = {s: f"coursedb_bench_{s}_{tag}" for s in ("rollback", "savepoint", "truncate", "delete", "schema")}
        self.made: list[str] = []
        self.clones = 0

    async def create(self) -> None:
        await self._create(self.source, "template0")
        conn = await asyncpg.connect(url_for(self.admin_url, self.source))
        try:
            await conn.execute(schema_sql(self.tables) + seed_sql(self.rows) + " ANALYZE;")
        finally:
            await conn.close()
        for name in self.dbs.values():
            await self._create(name, self.source)

    async def _create(self, name: str, template: str) -> None:
        await self.admin.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template)}")
        self.made.append(name)
        comment = json.dumps(owner_record("benchmark")).replace("'", "''")  # the record coursedb writes
        await self.admin.execute(f"COMMENT ON DATABASE {quote_ident(name)} IS '{comment}'")

    def url(self, key: str) -> str:
        return url_for(self.admin_url, self.dbs[key])

    def clone_name(self) -> str:
        # Not coursedb_-prefixed: another process's stale-database sweep must never drop it mid-test.
        self.clones += 1
        return f"bench_{os.getpid()}_{self.clones}"

    async def drop(self) -> None:
        for name in reversed(self.made):
            await self.admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        self.made.clear()


def janitor_kwargs(admin_url: str) -> dict:
    """host/port/user/password for pytest-postgresql; a Unix socket directory works as host."""
    parts = urlsplit(admin_url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return {
        "user": parts.username or query.get("user", "postgres"),
        "password": parts.password or query.get("password"),
        "host": parts.hostname or query.get("host", "localhost"),
        "port": parts.port or int(query.get("port", 5432)),
    }


class Strategy:
    name = ""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell

    async def start(self) -> None:
        pass

    async def one(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class PooledStrategy(Strategy):
    db = ""

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(self.cell.url(self.db), min_size=1, max_size=2)

    async def close(self) -> None:
        await self.pool.close()


class Rollback(PooledStrategy):
    name, db = "rollback", "rollback"

    async def one(self) -> None:
        async with self.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                await work(conn)
            finally:
                await tx.rollback()


class Savepoint(Strategy):
    name = "savepoint"

    async def start(self) -> None:
        # One connection, one outer transaction for the whole "session", as savepoint fixtures do.
        self.conn = await asyncpg.connect(self.cell.url("savepoint"))
        self.outer = self.conn.transaction()
        await self.outer.start()

    async def one(self) -> None:
        sp = self.conn.transaction()  # nested: asyncpg issues SAVEPOINT
        await sp.start()
        try:
            await work(self.conn)
        finally:
            await sp.rollback()

    async def close(self) -> None:
        await self.outer.rollback()
        await self.conn.close()


class CleanupStrategy(PooledStrategy):
    """Let the test commit, then undo its work with ``self.cleanup`` (set by ``start``)."""

    cleanup: str

    async def one(self) -> None:
        async with self.pool.acquire() as conn:
            try:
                await work(conn)
            finally:
                await conn.execute(self.cleanup)


class Truncate(CleanupStrategy):
    name, db = "truncate", "truncate"

    async def start(self) -> None:
        await super().start()
        names = ", ".join(table_names(self.cell.tables))
        self.cleanup = f"TRUNCATE {names} RESTART IDENTITY CASCADE; {seed_sql(self.cell.rows)}"


class Delete(CleanupStrategy):
    name, db = "delete", "delete"

    async def start(self) -> None:
        await super().start()
        children_first = reversed(table_names(self.cell.tables))
        self.cleanup = " ".join(f"DELETE FROM {t};" for t in children_first) + seed_sql(self.cell.rows)


class DropSchema(CleanupStrategy):
    name, db = "drop_schema", "schema"

    async def start(self) -> None:
        await super().start()
        self.cleanup = (
            "DROP SCHEMA public CASCADE; CREATE SCHEMA public; "
            + schema_sql(self.cell.tables)
            + seed_sql(self.cell.rows)
        )


class TemplateJanitor(Strategy):
    """What pytest-postgresql's `postgresql` fixture does per test, with its own janitor class."""

    name = "template_db"

    async def start(self) -> None:
        self.kwargs = janitor_kwargs(self.cell.admin_url)

    async def one(self) -> None:
        janitor = DatabaseJanitor(
            dbname=self.cell.clone_name(), template_dbname=self.cell.source, connection_timeout=10, **self.kwargs
        )
        janitor.init()  # sync psycopg, as in pytest-postgresql; nothing else runs meanwhile
        try:
            conn = await asyncpg.connect(url_for(self.cell.admin_url, janitor.dbname))
            try:
                await work(conn)
            finally:
                await conn.close()
        finally:
            janitor.drop()


class TemplateSQL(Strategy):
    """The same clone per test, in plain SQL on a held admin connection: the floor of that approach."""

    name = "template_db_sql"

    async def one(self) -> None:
        name = quote_ident(self.cell.clone_name())
        await self.cell.admin.execute(f"CREATE DATABASE {name} TEMPLATE {quote_ident(self.cell.source)}")
        try:
            conn = await asyncpg.connect(url_for(self.cell.admin_url, name.strip('"')))
            try:
                await work(conn)
            finally:
                await conn.close()
        finally:
            await self.cell.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


CLASSES = {c.name: c for c in (Rollback, Savepoint, Truncate, Delete, TemplateJanitor, TemplateSQL, DropSchema)}


async def measure_cell(
    cell: Cell, names: list[str], budget: float, min_n: int, max_n: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Run every strategy in round-robin time slices until the budget is spent; samples in seconds."""
    strategies = [CLASSES[n](cell) for n in names]
    for s in strategies:
        await s.start()
    samples: dict[str, list[float]] = {s.name: [] for s in strategies}
    try:
        for s in strategies:  # warm-up: first connections, caches, plans
            for _ in range(warmup):
                await s.one()
        time_slice = max(0.02, budget / (len(strategies) * 8))
        deadline = time.perf_counter() + budget
        while True:
            order = list(strategies)
            random.shuffle(order)
            for s in order:
                got = samples[s.name]
                if len(got) >= max_n:
                    continue
                slice_end = time.perf_counter() + time_slice
                while len(got) < max_n:
                    t0 = time.perf_counter()
                    await s.one()
                    got.append(time.perf_counter() - t0)
                    if time.perf_counter() >= slice_end:
                        break
            done = all(len(v) >= max_n for v in samples.values())
            enough = all(len(v) >= min_n for v in samples.values())
            if done or (enough and time.perf_counter() >= deadline):
                break
    finally:
        for s in strategies:
            await s.close()
    return samples


async def run(args: argparse.Namespace, admin_url: str, backend: str) -> tuple[list[dict], dict]:
    admin = await asyncpg.connect(admin_url)
    names = [n for n in STRATEGIES if n != "template_db" or DatabaseJanitor is not None]
    results: list[dict] = []
    try:
        version = await admin.fetchval("SHOW server_version")
        settings = {r["name"]: r["setting"] for r in await admin.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')"
        )}  # fmt: skip
        for tables in args.tables:
            for rows in args.rows:
                cell = Cell(admin, admin_url, tables, rows)
                try:
                    await cell.create()
                    samples = await measure_cell(cell, names, args.budget, args.min_n, args.max_n, args.warmup)
                finally:
                    await cell.drop()
                for name in names:
                    got = samples[name]
                    results.append({
                        "strategy": name, "tables": tables, "rows": rows,
                        "median_ms": _common.median_ms(got), "p95_ms": _common.p95_ms(got), "n": len(got),
                    })  # fmt: skip
                print(f"  measured {tables} tables, {rows} rows", file=sys.stderr, flush=True)
    finally:
        await admin.close()
    server = {"server_version": version, "backend": backend, **settings}
    return results, server


def summarize(results: list[dict]) -> dict:
    """Medians per test at 10 tables (0 preloaded rows) and the ratios the issue asks about."""
    at = {r["strategy"]: r["median_ms"] for r in results if r["tables"] == 10 and r["rows"] == 0}
    summary = {f"{name}_ms": at.get(name) for name in STRATEGIES}
    summary["rollback_ms"] = at.get("rollback")
    if "template_db" not in at:  # no pytest-postgresql (Python 3.10): the plain-SQL clone stands in
        summary["template_db_ms"] = at.get("template_db_sql")
    rb = summary["rollback_ms"]
    for key, name in (("template_db_over_rollback", "template_db_ms"), ("truncate_over_rollback", "truncate_ms"),
                      ("savepoint_over_rollback", "savepoint_ms"), ("delete_over_rollback", "delete_ms")):  # fmt: skip
        other = summary.get(name)
        summary[key] = round(other / rb, 1) if rb and other else None
    summary["template_peer"] = JANITOR or "plain SQL (pytest-postgresql not installed)"
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 tables, 0 rows, a second of measuring (~10 s)")
    parser.add_argument("--shared", action="store_true", help="use the course's shared server, not a private one")
    parser.add_argument("--tables", type=int, nargs="+", default=[2, 10, 50])
    parser.add_argument("--rows", type=int, nargs="+", default=[0, 10_000])
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of measuring per configuration")
    parser.add_argument("--min-n", type=int, default=12, help="samples each strategy gets at least")
    parser.add_argument("--max-n", type=int, default=2000, help="samples after which a strategy stops")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured tests per strategy and configuration")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/isolation.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.tables, args.rows, args.budget, args.min_n, args.max_n = [10], [0], 1.5, 5, 500

    def go(admin_url: str, backend: str) -> tuple[list[dict], dict]:
        return asyncio.run(run(args, admin_url, backend))

    if args.shared:
        state = coursedb.ensure_server()
        results, server = go(state.admin_url, state.backend)
    else:
        with _common.PrivateServer() as private:
            state = coursedb.ensure_server(private.settings())
            results, server = go(state.admin_url, "embedded (private)")

    print("\nPer-test cost of each isolation strategy (ms; whole cycle: setup + the same work + teardown)")
    print(f"server: PostgreSQL {server['server_version']}, {server['backend']}; template peer: "
          f"{JANITOR or 'plain SQL only'}\n")  # fmt: skip
    rollback = {(r["tables"], r["rows"]): r["median_ms"] for r in results if r["strategy"] == "rollback"}
    rows = [
        (r["strategy"], r["tables"], r["rows"], r["median_ms"], r["p95_ms"], r["n"],
         f"{r['median_ms'] / rollback[(r['tables'], r['rows'])]:.1f}x")
        for r in sorted(results, key=lambda r: (r["tables"], r["rows"], r["median_ms"]))
    ]  # fmt: skip
    print(_common.table(["strategy", "tables", "rows", "median_ms", "p95_ms", "n", "vs rollback"], rows))
    summary = summarize(results)
    document = {"machine": _common.machine(server), "results": results, "summary": summary}
    # A --quick run is too small to plot: it never overwrites the committed full-run results.
    _common.finish("isolation", document, summary, write=not (args.no_write or args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
