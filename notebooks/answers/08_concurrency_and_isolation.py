"""Answers to notebook 08 (exercises 8.1 and 8.2): wrong ones its checkers must reject, right ones they accept."""

import asyncio

import asyncpg

import shop
from coursebook.answers import right, wrong


@wrong("8.1", hint="returned [True, True]")
async def cancel_order_read_then_write(conn, order_id: int) -> bool:
    """Exercise 7.1's read-then-write: B reads 'pending' before A commits, and both cancels succeed."""
    async with conn.transaction():
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


@wrong("8.1", hint="returned [True, True]")
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


@wrong("8.1", hint="for a shipped order")
async def cancel_order_always_records(conn, order_id: int) -> bool:
    """Race-free cancel, but the event is written whether or not anything was cancelled."""
    async with conn.transaction():
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return cancelled is not None


@wrong("8.1", hint="0 order_cancelled events")
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


@wrong("8.2", hint="not wait for them")
async def claim_next_shipment_no_lock(conn) -> int | None:
    """No row lock on the read: B picks A's order too, then waits for A's lock on it."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1)
        RETURNING id
        """
    )


@wrong("8.2", hint="not wait for them")
async def claim_next_shipment_for_update(conn) -> int | None:
    """FOR UPDATE without SKIP LOCKED: the second worker queues behind the first."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR UPDATE)
        RETURNING id
        """
    )


@wrong("8.2", hint="it does not fail on them")
async def claim_next_shipment_nowait(conn) -> int | None:
    """FOR UPDATE NOWAIT: the second worker gets an error instead of the next order."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR UPDATE NOWAIT)
        RETURNING id
        """
    )


@wrong("8.2", hint="returned 9, expected 10")
async def claim_next_shipment_only_locks(conn) -> int | None:
    """Locks the order but never marks it shipped: the same transaction claims it again."""
    return await conn.fetchval("SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")


@wrong("8.2", hint="the paid order with the lowest id")
async def claim_next_shipment_not_shipped_yet(conn) -> int | None:
    """Takes any order not shipped yet, pending ones included."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status <> 'shipped' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id
        """
    )


@wrong("8.1", hint="Do both in one transaction")
async def cancel_order_no_transaction(conn, order_id: int) -> bool:
    """Race-free UPDATE, then the event in a statement of its own: outside a transaction each commits alone."""
    cancelled = await conn.fetchval(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id", order_id
    )
    if cancelled is None:
        return False
    await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
    return True


@wrong("8.1", hint="their order_cancelled events number [1, 0]")
async def cancel_order_one_event_per_kind(conn, order_id: int) -> bool:
    """Records the event only if no order_cancelled event exists yet, for any order."""
    async with conn.transaction():
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        if cancelled is None:
            return False
        await conn.execute(
            """
            INSERT INTO events (kind, payload)
            SELECT 'order_cancelled', $1 WHERE NOT EXISTS (SELECT FROM events WHERE kind = 'order_cancelled')
            """,
            {"order_id": order_id},
        )
        return True


@wrong("8.1", hint="returned [True, True]")
async def cancel_order_lock_outside_transaction(conn, order_id: int) -> bool:
    """Reads with FOR UPDATE before its transaction starts: the lock ends with that SELECT."""
    status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1 FOR UPDATE", order_id)
    if status not in ("pending", "paid"):
        return False
    async with conn.transaction():
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
    return True


@wrong("8.1", hint="then cancel_order returned False")
async def cancel_order_skip_locked(conn, order_id: int) -> bool:
    """Gives up on an order another transaction holds, although that transaction may not cancel it."""
    async with conn.transaction():
        cancelled = await conn.fetchval(
            """
            UPDATE orders SET status = 'cancelled'
            WHERE id = (SELECT id FROM orders WHERE id = $1 AND status IN ('pending', 'paid') FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            order_id,
        )
        if cancelled is None:
            return False
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


@wrong("8.2", hint="the paid order with the lowest id")
async def claim_next_shipment_no_order_by(conn) -> int | None:
    """No ORDER BY: the first paid row the server finds, which is not always the lowest id."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status = 'paid' LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id
        """
    )


@wrong("8.2", hint="the paid order with the lowest id")
async def claim_next_shipment_by_created_at(conn) -> int | None:
    """Oldest by created_at: an order imported with an old timestamp jumps the queue."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status = 'paid' ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id
        """
    )


@wrong("8.2", hint="expected the two oldest paid ones")
async def claim_next_shipment_locks_the_user(conn) -> int | None:
    """Joins users to check the buyer exists, so it locks the user's row too: that user's next order is skipped."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (
            SELECT o.id FROM orders o JOIN users u ON u.id = o.user_id
            WHERE o.status = 'paid' ORDER BY o.id LIMIT 1 FOR UPDATE SKIP LOCKED
        )
        RETURNING id
        """
    )


@wrong("8.2", hint="advisory locks still held")
async def claim_next_shipment_advisory_lock(conn) -> int | None:
    """Claims with a session advisory lock, which outlives the transaction (nothing ever unlocks it)."""
    for order_id in await conn.fetch("SELECT id FROM orders WHERE status = 'paid' ORDER BY id"):
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", order_id["id"]):
            await conn.execute("UPDATE orders SET status = 'shipped' WHERE id = $1", order_id["id"])
            return order_id["id"]
    return None


# Written by an outside engineer without seeing the catalogue, accepted by the checker before it grew.


@wrong("8.1", hint="a time limit it set itself")
async def cancel_order_gives_up_after_lock_timeout(conn, order_id: int) -> bool:
    """A bounded wait: SET LOCAL lock_timeout = '2s', and an order still held after that is not cancelled, no event."""
    async with conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '2s'")
        try:
            async with conn.transaction():
                changed = await conn.fetchval(
                    "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') "
                    "RETURNING id",
                    order_id,
                )
        except asyncpg.LockNotAvailableError:
            return False
        if changed is None:
            return False
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


@wrong("8.2", hint="was shipped before")
async def claim_next_shipment_newest_shipped(conn) -> int | None:
    """Ships with one UPDATE, then returns the shipped order with the highest id as the one it claimed."""
    await conn.execute(
        "UPDATE orders SET status = 'shipped' WHERE id = "
        "(SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
    )
    return await conn.fetchval("SELECT max(id) FROM orders WHERE status = 'shipped'")


@wrong("8.2", hint="returned 10, expected 9")
async def claim_next_shipment_ids_as_text(conn) -> int | None:
    """Orders the candidates by id::text: '10' sorts before '9'."""
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status = 'paid' ORDER BY id::text LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id
        """
    )


@wrong("8.1", hint="inside a transaction it started")
async def cancel_order_rolls_back_on_exceptions_only(conn, order_id: int) -> bool:
    """A transaction by hand, rolled back in `except Exception`: a cancelled call (a request's time limit, while it
    waits for the order) is no Exception, and leaves the transaction open on the connection."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        changed = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        if changed is not None:
            await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
    except Exception:
        await transaction.rollback()
        raise
    await transaction.commit()
    return changed is not None


# Accepted by the checkers of session 3 (outside engineers' answers, and round 2's), rejected by general properties now.


@wrong("8.1", hint="lock only the order you cancel")
async def cancel_order_join_users_for_update(conn, order_id: int) -> bool:
    """Reads the order joined with its user FOR UPDATE, without OF: the user's row is locked for the whole transaction,
    so the user's checkouts (place_order's foreign-key check) wait for every cancel in progress."""
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT o.status::text FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1 FOR UPDATE", order_id
        )
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


@wrong("8.1", hint="a time limit it set itself")
async def cancel_order_client_timeout(conn, order_id: int) -> bool:
    """asyncpg's timeout=2 and a TimeoutError means not cancelled, no event: an order another transaction holds longer
    than 2 s stays pending although it could be cancelled (a timer in Python, which the server never sees)."""
    try:
        async with conn.transaction():
            changed = await conn.fetchval(
                "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
                order_id,
                timeout=2,
            )
            if changed is None:
                return False
            await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
            return True
    except asyncio.TimeoutError:
        return False


@wrong("8.1", hint="lock only the order you cancel")
async def cancel_order_lock_table(conn, order_id: int) -> bool:
    """LOCK TABLE orders, then read, update and record: exactly once, but each cancel waits for every transaction that
    writes any order and blocks all of them until it commits."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE")
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


# Near-misses of the same kinds, written for the checker.


@wrong("8.1", hint="lock only the order you cancel")
async def cancel_order_join_users_for_no_key_update(conn, order_id: int) -> bool:
    """Joins users with FOR NO KEY UPDATE, still without OF: the user's row is locked until the cancel commits, so a
    change to the user (a new address) waits for it."""
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT o.status::text FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1 FOR NO KEY UPDATE",
            order_id,
        )
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


@wrong("8.1", hint="inside a transaction it started")
async def cancel_order_shielded(conn, order_id: int) -> bool:
    """The whole cancel under asyncio.shield, so that a request that times out still cancels: the cancelled caller's
    connection is still busy with it (another operation is in progress), and the cancel it was told failed happens."""

    async def cancel() -> bool:
        async with conn.transaction():
            changed = await conn.fetchval(
                "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
                order_id,
            )
            if changed is None:
                return False
            await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
            return True

    return await asyncio.shield(cancel())


@wrong("8.1", hint="let errors reach the caller")
async def cancel_order_false_on_any_error(conn, order_id: int) -> bool:
    """Any database error becomes False: a failed transaction is reported as an order that cannot be cancelled."""
    try:
        async with conn.transaction():
            changed = await conn.fetchval(
                "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
                order_id,
            )
            if changed is None:
                return False
            await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
            return True
    except asyncpg.PostgresError:
        return False


@wrong("8.1", hint="expected True,")
async def cancel_order_positive_ids_only(conn, order_id: int) -> bool:
    """Refuses ids below 1 ("ids start at 1"): an order with id 0 or a negative id is never cancelled."""
    if order_id < 1:
        return False
    async with conn.transaction():
        changed = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        if changed is None:
            return False
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


@wrong("8.2", hint="although an order nobody held was left")
async def claim_next_shipment_candidate_page(conn) -> int | None:
    """Reads a page of the 5 oldest paid ids, then tries each with FOR UPDATE SKIP LOCKED: while other workers hold
    those five, it returns None although paid orders are left."""
    candidates = await conn.fetch("SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 5")
    for candidate in candidates:
        claimed = await conn.fetchval(
            "SELECT id FROM orders WHERE id = $1 AND status = 'paid' FOR UPDATE SKIP LOCKED", candidate["id"]
        )
        if claimed is not None:
            await conn.execute("UPDATE orders SET status = 'shipped' WHERE id = $1", claimed)
            return claimed
    return None


@wrong("8.2", hint="although an order nobody held was left")
async def claim_next_shipment_advisory_page(conn) -> int | None:
    """The next 3 paid orders, each tried with pg_try_advisory_xact_lock: while workers hold those three, None."""
    for candidate in await conn.fetch("SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 3"):
        if await conn.fetchval("SELECT pg_try_advisory_xact_lock($1::bigint)", candidate["id"]):
            return await conn.fetchval(
                "UPDATE orders SET status = 'shipped' WHERE id = $1 AND status = 'paid' RETURNING id", candidate["id"]
            )
    return None


@wrong("8.2", hint="not wait for them")
async def claim_next_shipment_for_share(conn) -> int | None:
    """Picks with FOR SHARE SKIP LOCKED, then ships in a second statement: two workers share the lock on the same order,
    then each waits for the other to ship it (a deadlock the server ends)."""
    order_id = await conn.fetchval(
        "SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR SHARE SKIP LOCKED"
    )
    if order_id is not None:
        await conn.execute("UPDATE orders SET status = 'shipped' WHERE id = $1", order_id)
    return order_id


@wrong("8.2", hint="not wait for them")
async def claim_next_shipment_short_waits(conn) -> int | None:
    """Waits a little for each candidate (lock_timeout 100 ms in a savepoint) and goes on to the next: every worker
    waits for every other one, 100 ms each, and the caller's transaction keeps the lock_timeout."""
    for candidate in await conn.fetch("SELECT id FROM orders WHERE status = 'paid' ORDER BY id"):
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL lock_timeout = '100ms'")
                shipped = await conn.fetchval(
                    "UPDATE orders SET status = 'shipped' WHERE id = $1 AND status = 'paid' RETURNING id",
                    candidate["id"],
                )
        except asyncpg.LockNotAvailableError:
            continue
        if shipped is not None:
            return shipped
    return None


@wrong("8.2", hint="although an order nobody held was left")
async def claim_next_shipment_advisory_in_where(conn) -> int | None:
    """pg_try_advisory_xact_lock(id) in the WHERE of an ORDER BY … LIMIT 1 query: with a plan that reads every paid row
    before sorting, every paid order gets locked, and the next worker finds none (with an index scan on id it happens
    to lock one: right or wrong by the plan the server picks)."""
    order_id = await conn.fetchval(
        "SELECT id FROM orders WHERE status = 'paid' AND pg_try_advisory_xact_lock(id) ORDER BY id LIMIT 1"
    )
    if order_id is None:
        return None
    await conn.execute("UPDATE orders SET status = 'shipped' WHERE id = $1", order_id)
    return order_id


# --- right answers, written differently from the model --------------------------------------------


@right("8.1")
async def cancel_order_lock_then_decide(conn, order_id: int) -> bool:
    """Locks the order in a transaction, decides in Python, then changes it and records the event."""
    async with conn.transaction():
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1 FOR UPDATE", order_id)
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


@right("8.1")
async def cancel_order_one_statement(conn, order_id: int) -> bool:
    """The UPDATE and the INSERT in one statement (a data-modifying WITH): one statement is one transaction."""
    recorded = await conn.fetchval(
        """
        WITH cancelled AS (
            UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id
        )
        INSERT INTO events (kind, payload)
        SELECT 'order_cancelled', jsonb_build_object('order_id', id) FROM cancelled
        RETURNING true
        """,
        order_id,
    )
    return recorded is not None


@right("8.1")
async def cancel_order_command_tag(conn, order_id: int) -> bool:
    """execute()'s command tag says whether the UPDATE changed a row; a transaction object started and ended by hand."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        tag = await conn.execute(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid')", order_id
        )
        if tag == "UPDATE 1":
            await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
    except BaseException:
        await transaction.rollback()
        raise
    await transaction.commit()
    return tag == "UPDATE 1"


@right("8.2")
async def claim_next_shipment_two_statements(conn) -> int | None:
    """Picks and locks with one statement, ships with a second (the lock holds until the caller's transaction ends)."""
    order_id = await conn.fetchval(
        "SELECT id FROM orders WHERE status = 'paid' ORDER BY id ASC LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    if order_id is not None:
        await conn.execute("UPDATE orders SET status = 'shipped' WHERE id = $1", order_id)
    return order_id


@right("8.2")
async def claim_next_shipment_update_from(conn) -> int | None:
    """UPDATE … FROM a WITH that picks the order, with the weaker FOR NO KEY UPDATE lock."""
    row = await conn.fetchrow(
        """
        WITH next AS (
            SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED
        )
        UPDATE orders SET status = 'shipped' FROM next WHERE orders.id = next.id RETURNING orders.id
        """
    )
    return None if row is None else row["id"]


@right("8.1")
async def cancel_order_join_for_update_of_orders(conn, order_id: int) -> bool:
    """Joins users but locks only the order (FOR UPDATE OF o), then changes it and records the event."""
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT o.status::text FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1 FOR UPDATE OF o",
            order_id,
        )
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


@right("8.2")
async def claim_next_shipment_advisory_with_recheck(conn) -> int | None:
    """Candidates by id, each tried with pg_try_advisory_xact_lock (never waits; released when the caller's transaction
    ends), then shipped by an UPDATE that re-checks status = 'paid'."""
    for candidate in await conn.fetch("SELECT id FROM orders WHERE status = 'paid' ORDER BY id"):
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1::bigint)", candidate["id"]):
            continue
        shipped = await conn.fetchval(
            "UPDATE orders SET status = 'shipped' WHERE id = $1 AND status = 'paid' RETURNING id", candidate["id"]
        )
        if shipped is not None:
            return shipped
    return None
