"""The example application's behaviour, tested the way the course teaches."""

from decimal import Decimal

import asyncpg
import pytest

import shop


async def test_create_user_normalises_email(db_conn):
    user_id = await shop.create_user(db_conn, "Ada@Example.COM", "Ada")
    row = await shop.find_user_by_email(db_conn, "ada@example.com")
    assert row["id"] == user_id
    assert row["email"] == "ada@example.com"


async def test_duplicate_email_is_a_domain_error(db_conn):
    await shop.create_user(db_conn, "ada@example.com", "Ada")
    with pytest.raises(shop.EmailTaken):
        async with db_conn.transaction():  # a savepoint keeps the outer transaction usable
            await shop.create_user(db_conn, "ADA@example.com", "Ada again")
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 1


async def test_order_total_ignores_cancelled_orders(db_conn):
    user_id = await shop.create_user(db_conn, "bo@example.com", "Bo")
    await shop.place_order(db_conn, user_id, "10.50")
    await shop.place_order(db_conn, user_id, "99.99", status="cancelled")
    assert await shop.order_total(db_conn, user_id) == Decimal("10.50")


async def test_register_with_first_order_is_all_or_nothing(db_conn):
    with pytest.raises(asyncpg.CheckViolationError):
        await shop.register_with_first_order(db_conn, "neg@example.com", "Neg", "-1.00")
    assert await shop.find_user_by_email(db_conn, "neg@example.com") is None


async def test_record_event_round_trips_json(db_conn):
    event_id = await shop.record_event(db_conn, "signup", {"plan": "free", "seats": 3})
    assert await db_conn.fetchval("SELECT payload FROM events WHERE id = $1", event_id) == {"plan": "free", "seats": 3}


async def test_service_sees_only_committed_rows(db_conn, db_pool):
    await shop.create_user(db_conn, "uncommitted@example.com", "U")
    assert await shop.UserService(db_pool).count_users() == 0


async def test_service_sign_up_commits(db_committed):
    service = shop.UserService(db_committed)
    await service.sign_up("cy@example.com", "Cy")
    assert (await service.lookup("CY@example.com"))["name"] == "Cy"
