"""Answers to notebook 08 (exercises 8.1 and 8.2): wrong ones its checkers must reject, right ones they accept."""

import shop
from coursebook.answers import wrong


@wrong("8.1", hint="two concurrent cancels returned (True, True)")
async def cancel_order_read_then_write(conn, order_id: int) -> bool:
    """Exercise 7.1's read-then-write: B reads 'pending' before A commits, and both cancels succeed."""
    async with conn.transaction():
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


@wrong("8.1", hint="two concurrent cancels returned (True, True)")
async def cancel_order_decides_on_its_read(conn, order_id: int) -> bool:
    """The UPDATE re-checks the status, but the answer and the event come from the earlier read."""
    async with conn.transaction():
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        await conn.execute(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid')", order_id
        )
        if status not in ("pending", "paid"):
            return False
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


@wrong("8.1", hint="1 order_cancelled events for a shipped order")
async def cancel_order_always_records(conn, order_id: int) -> bool:
    """Race-free cancel, but the event is written whether or not anything was cancelled."""
    async with conn.transaction():
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return cancelled is not None


@wrong("8.1", hint="0 order_cancelled events for a pending order")
async def cancel_order_wrong_payload(conn, order_id: int) -> bool:
    """Records the event with the id as text: {"order_id": "7"} is not {"order_id": 7} in jsonb."""
    async with conn.transaction():
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        if cancelled is None:
            return False
        await shop.record_event(conn, "order_cancelled", {"order_id": str(order_id)})
        return True


@wrong("8.2", hint="lock timeout")
async def claim_next_shipment_no_lock(conn) -> int | None:
    """No row lock on the read: B picks A's order too, then waits for A's lock on it."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1)
        RETURNING id
        """
    )


@wrong("8.2", hint="lock timeout")
async def claim_next_shipment_for_update(conn) -> int | None:
    """FOR UPDATE without SKIP LOCKED: the second worker queues behind the first."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR UPDATE)
        RETURNING id
        """
    )


@wrong("8.2", hint="could not obtain lock")
async def claim_next_shipment_nowait(conn) -> int | None:
    """FOR UPDATE NOWAIT: the second worker gets an error instead of the next order."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR UPDATE NOWAIT)
        RETURNING id
        """
    )


@wrong("8.2", hint="the next claim takes the next paid order")
async def claim_next_shipment_only_locks(conn) -> int | None:
    """Locks the order but never marks it shipped: the same transaction claims it again."""
    return await conn.fetchval("SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")


@wrong("8.2", hint="the oldest paid order comes first")
async def claim_next_shipment_not_shipped_yet(conn) -> int | None:
    """Takes any order not shipped yet, pending ones included."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status <> 'shipped' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id
        """
    )
