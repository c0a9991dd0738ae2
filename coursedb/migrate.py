"""Apply the course schema: ordered SQL files, each once, fully async.

This is the async-safe shape of "run the migrations in a fixture": every statement goes
through the asyncpg connection you already hold, inside the running event loop. If you use
Alembic, do the same with an async engine (``await conn.run_sync(do_upgrade)``) or run the
sync ``command.upgrade`` in a worker thread (``await asyncio.to_thread(...)``) - never call
it directly from a coroutine, because Alembic's async env.py starts its own event loop.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import asyncpg

_PACKAGE = "coursedb.migrations"


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) for every migration, in the order they apply."""
    files = sorted(
        (p for p in resources.files(_PACKAGE).iterdir() if p.name.endswith(".sql")),
        key=lambda p: p.name,
    )
    return [(p.name, p.read_text(encoding="utf-8")) for p in files]


def schema_fingerprint() -> str:
    """Changes whenever any migration changes, so a stale template gets rebuilt."""
    digest = hashlib.sha256()
    for name, sql in migration_files():
        digest.update(name.encode() + b"\0" + sql.encode() + b"\0")
    return digest.hexdigest()[:12]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations ``conn``'s database has not seen yet; return their names."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
    applied = []
    for name, sql in migration_files():
        if name in done:
            continue
        async with conn.transaction():
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
        applied.append(name)
    return applied


async def empty_tables(conn: asyncpg.Connection) -> None:
    """Delete every row of every table in the public schema (the course's and any the learner made, but
    not the migrations' record) and restart their ids at 1: TRUNCATE ... RESTART IDENTITY CASCADE."""
    tables = await conn.fetch(
        "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables"
        " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
    )
    if tables:
        names = ", ".join(t["name"] for t in tables)
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
