"""Answers to notebook 03 (exercises 3.1 and 3.2): wrong ones its checkers must reject, right ones they accept."""

import contextlib
import types

from coursebook.answers import wrong


@wrong("3.2", hint="older created_at")
async def newest_user_by_id(conn) -> str | None:
    """Newest = highest id; an imported user breaks that."""
    return await conn.fetchval("SELECT email FROM users ORDER BY id DESC LIMIT 1")


@wrong("3.2", hint="break the tie")
async def newest_user_by_created_at_only(conn) -> str | None:
    """Sorts by created_at alone: rows of one transaction tie."""
    return await conn.fetchval("SELECT email FROM users ORDER BY created_at DESC LIMIT 1")


@wrong("3.2", hint="break the tie")
async def newest_user_max_created_at(conn) -> str | None:
    """Any user with the latest created_at."""
    return await conn.fetchval("SELECT email FROM users WHERE created_at = (SELECT max(created_at) FROM users)")


@wrong("3.2", hint="returned a Record")
async def newest_user_record(conn) -> str | None:
    """Returns the row, not the email."""
    return await conn.fetchrow("SELECT email FROM users ORDER BY created_at DESC, id DESC LIMIT 1")


@wrong("3.2", hint="newest_user returned None")
async def newest_user_do_nothing(conn) -> str | None:
    """An empty table gives None, so None it is."""
    return None


@wrong("3.1", hint="has no acquire() method")
def pool_sharing_the_connection(conn):
    """Hands over the connection itself."""
    return conn


@wrong("3.1", hint="'async with' cannot use")
def pool_sharing_plain_acquire(conn):
    """acquire() returns the connection, not something for 'async with'."""
    return types.SimpleNamespace(acquire=lambda: conn)


@wrong("3.1", hint="'async with' cannot use")
def pool_sharing_coroutine_acquire(conn):
    """acquire() is a coroutine function."""

    class Sharing:
        async def acquire(self):
            return conn

    return Sharing()


@wrong("3.1", hint="closed the test's connection")
def pool_sharing_closes(conn):
    """Cleans up after itself: closes the connection it lent."""

    @contextlib.asynccontextmanager
    async def acquire():
        try:
            yield conn
        finally:
            await conn.close()

    return types.SimpleNamespace(acquire=acquire)


@wrong("3.1", hint="has no acquire() method")
def pool_sharing_empty_body(conn):
    """Ran the cell without writing a body."""
