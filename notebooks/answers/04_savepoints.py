"""Answers to notebook 04 (exercises 4.1 and 4.2): wrong ones its checkers must reject, right ones they accept."""

import asyncpg

from coursebook.answers import wrong
from shop import EmailTaken, create_user, find_user_by_email, place_order


@wrong("4.1", hint="aborted")
async def import_users_without_savepoint(conn, people: list[tuple[str, str]]) -> list[str]:
    """The pitfall: catches EmailTaken in Python, the transaction is aborted on the server."""
    skipped = []
    for email, name in people:
        try:
            await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email)
    return skipped


@wrong("4.1", hint="aborted")
async def import_users_one_savepoint_for_all(conn, people: list[tuple[str, str]]) -> list[str]:
    """One savepoint around the whole loop: after the first duplicate, nothing works."""
    skipped = []
    async with conn.transaction():
        for email, name in people:
            try:
                await create_user(conn, email, name)
            except EmailTaken:
                skipped.append(email)
    return skipped


@wrong("4.1", hint="only EmailTaken means skip")
async def import_users_except_exception(conn, people: list[tuple[str, str]]) -> list[str]:
    """Savepoints, but every error counts as 'email taken'."""
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except Exception:
            skipped.append(email)
    return skipped


@wrong("4.1", hint="after your check")
async def import_users_check_then_insert(conn, people: list[tuple[str, str]]) -> list[str]:
    """Looks first, inserts if nobody is there: another connection can insert in between."""
    skipped = []
    for email, name in people:
        if await find_user_by_email(conn, email) is not None:
            skipped.append(email)
        else:
            await create_user(conn, email, name)
    return skipped


@wrong("4.1", hint="as they were given")
async def import_users_lowercased(conn, people: list[tuple[str, str]]) -> list[str]:
    """Reports the skipped emails the way the table stores them."""
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email.lower())
    return skipped


@wrong("4.1", hint="after importing 2 new people")
async def import_users_do_nothing(conn, people: list[tuple[str, str]]) -> list[str]:
    """Nobody skipped, nobody imported."""
    return []


@wrong("4.2", hint="still there")
async def place_orders_savepoint_each(conn, user_id: int, totals: list[str]) -> list[int]:
    """A savepoint per order: the good orders before the bad one stay."""
    ids = []
    for total in totals:
        async with conn.transaction():
            ids.append(await place_order(conn, user_id, total))
    return ids


@wrong("4.2", hint="the caller's transaction no longer works")
async def place_orders_no_transaction(conn, user_id: int, totals: list[str]) -> list[int]:
    """No transaction of its own: one bad order aborts the caller's whole transaction."""
    return [await place_order(conn, user_id, total) for total in totals]


@wrong("4.2", hint="must raise")
async def place_orders_swallows_the_error(conn, user_id: int, totals: list[str]) -> list[int]:
    """All or nothing, but the caller never hears that it was nothing."""
    try:
        async with conn.transaction():
            return [await place_order(conn, user_id, total) for total in totals]
    except asyncpg.PostgresError:
        return []


@wrong("4.2", hint="ended the caller's transaction")
async def place_orders_raw_sql(conn, user_id: int, totals: list[str]) -> list[int]:
    """The article's way: BEGIN and ROLLBACK as raw SQL."""
    await conn.execute("BEGIN")
    try:
        return [await place_order(conn, user_id, total) for total in totals]
    except asyncpg.PostgresError:
        await conn.execute("ROLLBACK")
        raise


@wrong("4.2", hint="placed 0 orders")
async def place_orders_do_nothing(conn, user_id: int, totals: list[str]) -> list[int]:
    """Returns an empty list."""
    return []
