"""coursedb.lockstep drives two real connections one statement at a time: the races it shows are real,
the same on every run, and a stuck session ends the run instead of hanging it."""

import asyncio

import asyncpg
import pytest

import shop
from coursedb import lockstep
from coursedb.lockstep import Lockstep, in_transaction

CANCEL = "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id"


async def read_then_write(conn, order_id: int) -> bool:
    if await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id) not in ("pending", "paid"):
        return False
    await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    return True


async def one_statement(conn, order_id: int) -> bool:
    return await conn.fetchval(CANCEL, order_id) is not None


async def new_order(conn) -> int:
    user_id = await shop.create_user(conn, f"u{await conn.fetchval('SELECT count(*) FROM users')}@example.com", "U")
    return await shop.place_order(conn, user_id, "10.00")


async def test_read_then_write_races_the_same_way_every_time(db_committed):
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        race = Lockstep(A=a, B=b)
        for _ in range(3):
            order_id = await new_order(a)
            outcome = await race.run({name: lambda c, o=order_id: read_then_write(c, o) for name in "AB"}, head_start=1)
            assert outcome.results == {"A": True, "B": True}
            assert [step[:4] for step in outcome.steps] == ["A: S", "B: S", "A: U", "B: U"]
            assert outcome.waited == []


async def test_one_statement_cancels_once_in_every_schedule(db_committed):
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        race = Lockstep(A=a, B=b)
        for first, head_start in race.schedules():
            for wrap in (lambda call: call, in_transaction):
                order_id = await new_order(a)
                calls = {name: wrap(lambda c, o=order_id: one_statement(c, o)) for name in "AB"}
                outcome = await race.run(calls, first=first, head_start=head_start)
                assert sorted(outcome.results.values()) == [False, True], outcome.timeline()
        assert not a.is_in_transaction() and not b.is_in_transaction()


async def test_a_held_lock_is_seen_on_the_server(db_committed):
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await new_order(a)
        outcome = await Lockstep(A=a, B=b).run({n: in_transaction(lambda c: one_statement(c, order_id)) for n in "AB"})
        assert outcome.results == {"A": True, "B": False}
        assert outcome.waited == ["B waits for A"]
        assert outcome.steps == [f"A: {CANCEL}", f"B: {CANCEL} (B waits for A)", "A: COMMIT", "B: COMMIT"]


async def test_a_deadlock_ends_with_one_error(db_committed):
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        first, second = await new_order(a), await new_order(a)

        def both(ids):
            async def call(conn):
                for order_id in ids:
                    await conn.execute("UPDATE orders SET total = total + 1 WHERE id = $1", order_id)

            return in_transaction(call)

        outcome = await Lockstep(A=a, B=b).run({"A": both([first, second]), "B": both([second, first])})
        errors = outcome.raised()
        assert len(errors) == 1 and isinstance(next(iter(errors.values())), asyncpg.DeadlockDetectedError)


async def test_a_lock_held_elsewhere_ends_the_run_within_its_bound(db_committed, db_url, monkeypatch):
    monkeypatch.setattr(lockstep, "BOUND_S", 1.0)
    holder = await asyncpg.connect(db_url)
    try:
        async with db_committed.acquire() as a, db_committed.acquire() as b:
            order_id = await new_order(a)
            async with holder.transaction():
                await holder.execute("SELECT FROM orders WHERE id = $1 FOR UPDATE", order_id)
                with pytest.raises(lockstep.Stuck, match="A still had not finished after 1 s"):
                    await Lockstep(A=a, B=b).run({"A": lambda c: one_statement(c, order_id)})
            assert not a.is_in_transaction()
    finally:
        await holder.close()


async def test_watch_sees_each_step_from_an_idle_connection(db_committed):
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await new_order(a)
        seen = []

        async def watch(conn):
            seen.append(await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id))
            return f"saw {seen[-1]}" if seen[-1] == "cancelled" else None

        outcome = await Lockstep(A=a, B=b).run({"A": lambda c: read_then_write(c, order_id)}, watch=watch)
        assert seen == ["pending", "cancelled"]
        assert outcome.problems == ["saw cancelled"]


def cancel_with(order_id: int, limit: str | None):
    """A cancel in a transaction of its own, under a lock_timeout it sets itself (if any); False when the limit
    ends its wait (the near-miss: a pending order reported as not cancellable)."""

    async def call(conn) -> bool:
        async with conn.transaction():
            if limit is not None:
                await conn.execute(f"SET LOCAL lock_timeout = '{limit}'")
            try:
                async with conn.transaction():
                    return await conn.fetchval(CANCEL, order_id) is not None
            except asyncpg.LockNotAvailableError:
                return False

    return call


def holding(order_id: int):
    async def call(conn) -> None:
        await conn.execute("UPDATE orders SET total = total + 1 WHERE id = $1", order_id)

    return in_transaction(call)


async def test_hold_notes_a_waiter_that_gives_up_and_the_limit_it_set(db_committed):
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await new_order(a)
        outcome = await Lockstep(A=a, B=b).run(
            {"A": holding(order_id), "B": cancel_with(order_id, "10ms")}, first="A", hold=30
        )
        assert outcome.results == {"A": None, "B": False}
        assert outcome.limits == ["B waited for A with lock_timeout = 10ms"]
        assert len(outcome.gave_up) == 1 and outcome.gave_up[0].startswith("B stopped waiting for A after ")
        assert "A still holding" in outcome.timeline()


async def test_hold_notes_a_limit_that_would_end_a_longer_wait(db_committed):
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await new_order(a)
        outcome = await Lockstep(A=a, B=b).run(
            {"A": holding(order_id), "B": cancel_with(order_id, "1h")}, first="A", hold=0
        )
        assert outcome.results == {"A": None, "B": True}
        assert outcome.limits == ["B waited for A with lock_timeout = 1h"] and outcome.gave_up == []


async def test_hold_leaves_a_patient_waiter_alone(db_committed):
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await new_order(a)
        await b.execute("SET lock_timeout = '1h'")  # the session's own setting before the run: not the call's doing
        try:
            outcome = await Lockstep(A=a, B=b).run(
                {"A": holding(order_id), "B": cancel_with(order_id, None)}, first="A", hold=0
            )
        finally:
            await b.execute("RESET lock_timeout")
        assert outcome.results == {"A": None, "B": True}
        assert outcome.waited == ["B waits for A"] and outcome.limits == [] and outcome.gave_up == []


def cancel_on_the_client(order_id: int, how: str):
    """A cancel under a time limit the server never sees: asyncpg's timeout=, asyncio.wait_for or asyncio.timeout."""

    async def call(conn) -> bool:
        if how == "timeout=":
            return await conn.fetchval(CANCEL, order_id, timeout=60) is not None
        if how == "wait_for":
            return await asyncio.wait_for(conn.fetchval(CANCEL, order_id), 60) is not None
        async with asyncio.timeout(60):
            return await conn.fetchval(CANCEL, order_id) is not None

    return call


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("timeout=", "timeout=60 (asyncpg's, a limit on the client)"),
        ("wait_for", "asyncio.wait_for() ending in "),
        ("timeout()", "asyncio.timeout() ending in "),
    ],
)
async def test_hold_notes_a_limit_on_the_client_the_server_never_sees(db_committed, how, said):
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await new_order(a)
        outcome = await Lockstep(A=a, B=b).run(
            {"A": holding(order_id), "B": cancel_on_the_client(order_id, how)}, first="A", hold=0
        )
        assert outcome.results == {"A": None, "B": True}
        assert len(outcome.limits) == 1 and outcome.limits[0].startswith(f"B waited for A with {said}"), outcome.limits
