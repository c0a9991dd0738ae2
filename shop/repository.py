"""Queries over one connection. The caller decides the transaction, except where a
function needs several statements to succeed or fail together."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg


class EmailTaken(ValueError):
    """Raised when a user with that email already exists."""


async def create_user(conn: asyncpg.Connection, email: str, name: str) -> int:
    """Insert a user and return the new id; emails are unique, compared case-insensitively."""
    try:
        return await conn.fetchval("INSERT INTO users (email, name) VALUES (lower($1), $2) RETURNING id", email, name)
    except asyncpg.UniqueViolationError:
        raise EmailTaken(email) from None


async def find_user_by_email(conn: asyncpg.Connection, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, email, name, created_at FROM users WHERE email = lower($1)", email)


async def place_order(conn: asyncpg.Connection, user_id: int, total: Decimal | str, status: str = "pending") -> int:
    """Insert an order for an existing user and return its id."""
    return await conn.fetchval(
        "INSERT INTO orders (user_id, total, status) VALUES ($1, $2, $3) RETURNING id",
        user_id,
        Decimal(total),
        status,
    )


async def order_total(conn: asyncpg.Connection, user_id: int) -> Decimal:
    """Sum of a user's orders that are not cancelled (0 when there are none)."""
    return await conn.fetchval(
        "SELECT coalesce(sum(total), 0) FROM orders WHERE user_id = $1 AND status <> 'cancelled'", user_id
    )


async def register_with_first_order(conn: asyncpg.Connection, email: str, name: str, total: Decimal | str) -> int:
    """Create a user and their first order together: if the order fails, there is no user.

    The function manages its own transaction. Inside a test's transaction asyncpg turns
    it into a SAVEPOINT, so the all-or-nothing behaviour can be tested with rollback isolation.
    """
    async with conn.transaction():
        user_id = await create_user(conn, email, name)
        await place_order(conn, user_id, total)
    return user_id


async def record_event(conn: asyncpg.Connection, kind: str, payload: dict) -> uuid.UUID:
    """Store a JSON event. Needs the json codec (coursedb.init_connection) to pass a dict."""
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload)
