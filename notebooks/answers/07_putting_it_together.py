"""Answers to notebook 07 (exercises 7.1 and 7.2): wrong ones its checkers must reject, right ones they accept."""

import pytest

import shop
from coursebook.answers import wrong


@wrong("7.1", hint="both returned True")
async def cancel_order_read_then_write(conn, order_id: int) -> bool:
    """Reads the status, then writes: two concurrent cancels both see 'pending' (the issue's example)."""
    status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
    if status in ("pending", "paid"):
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        return True
    return False


@wrong("7.1", hint="a shipped order")
async def cancel_order_any_status(conn, order_id: int) -> bool:
    """Cancels whatever the status."""
    return await conn.fetchval("UPDATE orders SET status = 'cancelled' WHERE id = $1 RETURNING true", order_id) is True


@wrong("7.1", hint="returned 'UPDATE 1'")
async def cancel_order_command_status(conn, order_id: int) -> bool:
    """Returns execute()'s status text."""
    return await conn.execute(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid')", order_id
    )


@wrong("7.1", hint="a paid order")
async def cancel_order_pending_only(conn, order_id: int) -> bool:
    """Forgets that paid orders can be cancelled too."""
    cancelled = await conn.fetchval(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status = 'pending' RETURNING id", order_id
    )
    return cancelled is not None


@wrong("7.1", hint="returned True")
async def cancel_order_hard_coded(conn, order_id: int) -> bool:
    """Always True, never touches the row."""
    return True


@wrong("7.2", hint="a second user")
@pytest.fixture
def make_user_fixed_email(db_conn):
    """Every user gets the same email."""

    async def make(email: str | None = None) -> int:
        return await shop.create_user(db_conn, email or "user@example.com", "User")

    return make


@wrong("7.2", hint="not callable")
@pytest.fixture
async def make_user_not_a_factory(db_conn):
    """Returns one user's id, not a function that makes users."""
    return await shop.create_user(db_conn, "user@example.com", "User")


@wrong("7.2", hint="visible to another connection")
@pytest.fixture
def make_user_commits(db_pool):
    """Creates users through the pool: they are committed and outlive the test."""
    made = []

    async def make(email: str | None = None) -> int:
        async with db_pool.acquire() as conn:
            user_id = await shop.create_user(conn, email or f"user{len(made)}@example.com", "User")
        made.append(user_id)
        return user_id

    return make


@wrong("7.2", hint="ScopeMismatch")
@pytest.fixture(scope="session")
def make_user_session_scoped(db_conn):
    """Made once for the whole session, on top of a per-test fixture."""
    counter = iter(range(1_000_000))

    async def make(email: str | None = None) -> int:
        return await shop.create_user(db_conn, email or f"user{next(counter)}@example.com", "User")

    return make
