# %% [markdown]
# # 08 · Concurrency and isolation levels
#
# **You will learn**
# - why no test on `db_conn` can show a race, and what to test races with instead;
# - how to interleave two transactions step by step, so a race happens the same way every run;
# - the lost update of read-then-write code, and two fixes: one statement, or `SELECT … FOR UPDATE`;
# - `FOR UPDATE SKIP LOCKED` for job queues, and a real deadlock with `DeadlockDetectedError`;
# - READ COMMITTED, REPEATABLE READ and SERIALIZABLE on the same two anomalies;
# - a retry loop for `SerializationError`, and a test that proves the retry works.
#
# *About 65 minutes.*

# %%
from coursedb.notebook import setup

db_url = setup()

# %% [markdown]
# ## The idea
#
# Rollback isolation (notebook 03) gives every test **one connection and one transaction**. A race
# needs **two transactions at once**: two requests cancelling the same order, two workers taking
# the same job. On one connection that cannot happen, so every bug of this kind passes every
# `db_conn` test.
#
# Two connections, then. But a race that you *hope* shows up (start two tasks, maybe sleep a little)
# passes on a quiet laptop and fails on a busy CI runner, or the other way round. The cure is to
# **drive both transactions yourself, one statement at a time**: A reads, B reads, A writes, and
# so on. When a statement has to wait for a lock, start it as a task and ask the *server* when it
# is waiting (`pg_blocking_pids`), with a time limit. No sleeps, no luck.
#
# `Session` below is a connection with a name that prints each statement it runs, so an interleaving
# reads like a timeline. `two_sessions()` opens two and always closes them.

# %%
import asyncio
import contextlib
import uuid
from decimal import Decimal

import asyncpg
import pytest

import coursedb
import shop


class Session:
    """A connection that prints what it runs: the timeline of an interleaving."""

    def __init__(self, name: str, conn: asyncpg.Connection, verbose: bool = True) -> None:
        self.name, self.conn, self.verbose = name, conn, verbose

    async def run(self, sql: str, *args):
        value = await self.conn.fetchval(sql, *args)
        if self.verbose:
            print(f"{self.name}: {sql}" + ("" if value is None else f"  -> {value}"))
        return value

    def start(self, sql: str, *args) -> asyncio.Task:
        """Send a statement that may have to wait for a lock; finish() collects its result."""
        if self.verbose:
            print(f"{self.name}: {sql}  ...")
        return asyncio.create_task(self.conn.fetchval(sql, *args))

    async def finish(self, task: asyncio.Task):
        value = await asyncio.wait_for(task, 5)
        if self.verbose:
            print(f"{self.name}:   ... " + ("done" if value is None else f"-> {value}"))
        return value


@contextlib.asynccontextmanager
async def two_sessions(verbose: bool = True):
    a, b = await asyncpg.connect(db_url), await asyncpg.connect(db_url)
    try:
        yield Session("A", a, verbose), Session("B", b, verbose)
    finally:
        await a.close()
        await b.close()


async def wait_until_blocked(observer: asyncpg.Connection, pid: int, task: asyncio.Task | None = None) -> None:
    """Return once backend `pid` waits for a lock (or `task` finished). Fails after 5 s, never hangs."""
    for _ in range(500):
        if task is not None and task.done():
            return
        if await observer.fetchval("SELECT cardinality(pg_blocking_pids($1)) > 0", pid):
            return
        await asyncio.sleep(0.01)  # polling the server, not hoping for an order
    raise AssertionError(f"backend {pid} did not wait for a lock within 5 s")


conn = await asyncpg.connect(db_url)  # this notebook's own connection, for setting up rows


async def fresh_order(total: str = "10.00", status: str = "pending") -> int:
    """Empty tables, one user, one committed order: every demo starts the same way."""
    await coursedb.empty_tables(conn)
    user_id = await shop.create_user(conn, "ada@example.com", "Ada")
    return await shop.place_order(conn, user_id, total, status)


# %% [markdown]
# ## A lost update, step by step
#
# Two requests each add 5.00 to the same order's total, with code that reads the total, adds in
# Python, and writes it back. Each request is correct on its own. Interleaved like this, one
# addition disappears:

# %%
order_id = await fresh_order("10.00")
async with two_sessions() as (a, b):
    await a.run("BEGIN")
    await b.run("BEGIN")
    total_a = await a.run("SELECT total FROM orders WHERE id = $1", order_id)
    total_b = await b.run("SELECT total FROM orders WHERE id = $1", order_id)
    await a.run("UPDATE orders SET total = $2 WHERE id = $1", order_id, total_a + 5)
    await a.run("COMMIT")
    await b.run("UPDATE orders SET total = $2 WHERE id = $1", order_id, total_b + 5)
    await b.run("COMMIT")
print("total now:", await conn.fetchval("SELECT total FROM orders WHERE id = $1", order_id))

# %% [markdown]
# Two additions of 5.00 to 10.00 give 15.00: no error, no warning, money gone. Both writes
# succeeded because each wrote what it had read, and the server has no idea the second one was
# based on a stale value.
#
# **Fix 1: one statement.** `UPDATE orders SET total = total + 5` reads and writes the row
# together; a second one waits for the first one's row lock, then adds to the *new* total. B's
# update has to wait, so it runs as a task, and the cell asks the server when B is waiting:

# %%
order_id = await fresh_order("10.00")
add_five = "UPDATE orders SET total = total + 5 WHERE id = $1"
async with two_sessions() as (a, b):
    await a.run("BEGIN")
    await b.run("BEGIN")
    await a.run(add_five, order_id)
    b_adds = b.start(add_five, order_id)
    await wait_until_blocked(a.conn, b.conn.get_server_pid(), b_adds)
    print("   (the server says: B waits for A's row lock)")
    await a.run("COMMIT")
    await b.finish(b_adds)
    await b.run("COMMIT")
print("total now:", await conn.fetchval("SELECT total FROM orders WHERE id = $1", order_id))

# %% [markdown]
# **Fix 2: lock what you read**, when the new value must be computed in Python. `SELECT … FOR UPDATE`
# takes the row lock at the read, so B's read waits until A commits, and then sees A's total:

# %%
order_id = await fresh_order("10.00")
async with two_sessions() as (a, b):
    await a.run("BEGIN")
    await b.run("BEGIN")
    total_a = await a.run("SELECT total FROM orders WHERE id = $1 FOR UPDATE", order_id)
    read_b = b.start("SELECT total FROM orders WHERE id = $1 FOR UPDATE", order_id)
    await wait_until_blocked(a.conn, b.conn.get_server_pid(), read_b)
    print("   (the server says: B waits for A's row lock)")
    await a.run("UPDATE orders SET total = $2 WHERE id = $1", order_id, total_a + 5)
    await a.run("COMMIT")
    total_b = await b.finish(read_b)
    await b.run("UPDATE orders SET total = $2 WHERE id = $1", order_id, total_b + 5)
    await b.run("COMMIT")
print("total now:", await conn.fetchval("SELECT total FROM orders WHERE id = $1", order_id))

# %% [markdown]
# ## The same anomalies at three isolation levels
#
# PostgreSQL runs every transaction at **READ COMMITTED** unless told otherwise: each *statement*
# sees what was committed before it began. **REPEATABLE READ** gives the whole transaction one
# snapshot, and refuses to write a row that someone else changed since. **SERIALIZABLE** adds a check
# that the transactions could have run one after the other, and aborts one when they couldn't.
#
# Two scenarios, each at each level, the same interleaving every time:
#
# - **lost update**: the read-then-write above;
# - **write skew**: a rule that spans rows. "A user has at most one pending order": A and B each
#   count the user's pending orders (zero), each inserts one. No row is written twice, so no row
#   lock ever meets another.
#
# A refused transaction gets `asyncpg.SerializationError` (SQLSTATE `40001`), at the statement or
# at the `COMMIT`; the scenarios catch it and report which session got it.


# %%
async def lost_update(level: str) -> str:
    order_id = await fresh_order("10.00")
    async with two_sessions(verbose=False) as (a, b):
        await a.run(f"BEGIN ISOLATION LEVEL {level}")
        await b.run(f"BEGIN ISOLATION LEVEL {level}")
        total_a = await a.run("SELECT total FROM orders WHERE id = $1", order_id)
        total_b = await b.run("SELECT total FROM orders WHERE id = $1", order_id)
        await a.run("UPDATE orders SET total = $2 WHERE id = $1", order_id, total_a + 5)
        await a.run("COMMIT")
        try:
            await b.run("UPDATE orders SET total = $2 WHERE id = $1", order_id, total_b + 5)
            await b.run("COMMIT")
        except asyncpg.SerializationError:
            return "B: SerializationError"
    total = await conn.fetchval("SELECT total FROM orders WHERE id = $1", order_id)
    return f"both committed, total {total}" + (" (lost update)" if total != Decimal("20.00") else "")


async def write_skew(level: str) -> str:
    await fresh_order(status="shipped")
    user_id = await conn.fetchval("SELECT id FROM users")
    count_pending = "SELECT count(*) FROM orders WHERE user_id = $1 AND status = 'pending'"
    add_pending = "INSERT INTO orders (user_id, total) VALUES ($1, 1)"
    async with two_sessions(verbose=False) as (a, b):
        await a.run(f"BEGIN ISOLATION LEVEL {level}")
        await b.run(f"BEGIN ISOLATION LEVEL {level}")
        assert await a.run(count_pending, user_id) == 0
        assert await b.run(count_pending, user_id) == 0
        await a.run(add_pending, user_id)
        await a.run("COMMIT")
        try:
            await b.run(add_pending, user_id)
            await b.run("COMMIT")
        except asyncpg.SerializationError:
            return "B: SerializationError"
    pending = await conn.fetchval(count_pending, user_id)
    return f"both committed, {pending} pending orders" + (" (rule broken)" if pending > 1 else "")


print(f"{'':16}  {'lost update':42}  write skew")
for level in ("READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"):
    lost, skew = await lost_update(level), await write_skew(level)
    print(f"{level:16}  {lost:42}  {skew}")

# %% [markdown]
# Read the table as a menu:
#
# - READ COMMITTED never refuses: both anomalies go through silently. Fix them in the SQL
#   (one statement, `FOR UPDATE`, or a constraint such as a unique partial index).
# - REPEATABLE READ catches the lost update but not the write skew.
# - SERIALIZABLE catches both, and in exchange **any** transaction may be refused. Code that uses it
#   must retry the whole transaction, and tests must prove that the retry works (further below).
#
# ## A real deadlock
#
# A updates order 1 then order 2; B updates order 2 then order 1. Each ends up waiting for the
# other. PostgreSQL checks for such a cycle when a lock wait lasts longer than `deadlock_timeout`
# (1 s by default), then aborts one of the two with `DeadlockDetectedError`; the other goes on.
# B's second update must be sent once A is really waiting, so the cell asks the server again:

# %%
first_id = await fresh_order()
user_id = await conn.fetchval("SELECT id FROM users")
second_id = await shop.place_order(conn, user_id, "20.00")
bump_first = "UPDATE orders SET total = total + 1 WHERE id = 1"
bump_second = "UPDATE orders SET total = total + 1 WHERE id = 2"
assert (first_id, second_id) == (1, 2)  # empty_tables restarted the ids

async with two_sessions() as (a, b):
    await a.run("BEGIN")
    await b.run("BEGIN")
    await a.run(bump_first)
    await b.run(bump_second)
    a_waits = a.start(bump_second)
    await wait_until_blocked(b.conn, a.conn.get_server_pid(), a_waits)
    print("   (the server says: A waits for B)")
    b_waits = b.start(bump_first)
    outcomes = await asyncio.wait_for(asyncio.gather(a_waits, b_waits, return_exceptions=True), 10)
    aborted = [f"{type(error).__name__}: {error.message}" for error in outcomes if isinstance(error, Exception)]
    print("aborted:", aborted)
    print("the other one's update went through:", len(aborted) == 1)

# %% [markdown]
# Deadlocks come from taking the same locks in different orders. The fix is one order for everyone:
# lock all the rows a transaction needs up front, sorted. The same two transactions, each locking
# orders 1 and 2 first, in id order: B waits for A at its first lock and never holds what A needs.

# %%
lock_both = "SELECT count(*) FROM (SELECT id FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE) AS locked"
async with two_sessions() as (a, b):
    await a.run("BEGIN")
    await b.run("BEGIN")
    await a.run(lock_both, [2, 1])
    b_locks = b.start(lock_both, [2, 1])
    await wait_until_blocked(a.conn, b.conn.get_server_pid(), b_locks)
    print("   (the server says: B waits for A)")
    await a.run(bump_first)
    await a.run(bump_second)
    await a.run("COMMIT")
    await b.finish(b_locks)
    await b.run(bump_second)
    await b.run(bump_first)
    await b.run("COMMIT")

# %% [markdown]
# ## Job queues: `FOR UPDATE SKIP LOCKED`
#
# A job queue in a table: workers each take the next job, and no job may be taken twice. Here the jobs are
# paid orders waiting to be shipped, and each worker is a transaction that locks the order it takes.
#
# `FOR UPDATE` alone makes the second worker *wait* for the first (and then find the job taken); `SKIP LOCKED`
# makes it pass over locked rows and take the next free one. Three paid orders to ship, two workers.
# `lock_timeout` turns "waits for ever" into an error after 200 ms, so the blocked version shows up
# as an error instead of a hang:

# %%
await fresh_order(status="paid")
user_id = await conn.fetchval("SELECT id FROM users")
for _ in range(2):
    await shop.place_order(conn, user_id, "10.00", "paid")
next_paid = "SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR UPDATE"

async with two_sessions() as (a, b):
    await a.run("BEGIN")
    await b.run("BEGIN")
    await b.run("SET LOCAL lock_timeout = '200ms'")
    await a.run(next_paid)
    try:
        await b.run(next_paid)
    except asyncpg.LockNotAvailableError as exc:
        print("B without SKIP LOCKED:", type(exc).__name__, "-", exc)
    await b.run("ROLLBACK")
    await b.run("BEGIN")
    await b.run(next_paid + " SKIP LOCKED")
    await a.run("COMMIT")
    await b.run("COMMIT")

# %% [markdown]
# ## Testing it: two pool connections, committed rows
#
# None of this is visible to a test on `db_conn`. The obvious attempt, two cancels at once on the
# test's connection, does not even run: one asyncpg connection carries one query at a time.
#
# First the code under test. `cancel_order_check_then_act` is how many people first write
# Exercise 7.1: read the status, decide in Python, write.

# %%
await coursedb.empty_tables(conn)  # the demos committed rows; the tests start from empty tables


async def cancel_order_check_then_act(conn: asyncpg.Connection, order_id: int) -> bool:
    status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
    if status not in ("pending", "paid"):
        return False
    await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    return True


async def cancel_order_one_statement(conn: asyncpg.Connection, order_id: int) -> bool:
    cancelled = await conn.fetchval(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
        order_id,
    )
    return cancelled is not None


# %% [markdown]
# ### Pitfall: a concurrent test on one connection

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


async def test_two_cancels_at_once_on_db_conn(db_conn):
    user_id = await shop.create_user(db_conn, "ada@example.com", "Ada")
    order_id = await shop.place_order(db_conn, user_id, "10.00")
    results = await asyncio.gather(
        cancel_order_check_then_act(db_conn, order_id),
        cancel_order_check_then_act(db_conn, order_id),
        return_exceptions=True,
    )
    assert results == [True, False]


# %% [markdown]
# `InterfaceError: another operation is in progress`. And even run one after the other, the two
# cancels share one transaction, so the second simply sees the first's `cancelled`: every
# sequential test of the check-then-act version passes.
#
# ### A concurrent test that cannot be lucky
#
# `cancel_twice` runs two cancels of one order in **two transactions on two pool connections**, in
# the order that hurts check-then-act code: A cancels and keeps its transaction open; B starts its
# cancel; once B waits for A's row lock (or is done), A commits; B finishes. The rows must be
# committed for the second connection to see them, so the tests use `db_committed`, which empties
# the tables afterwards. Two connections from the pool, both given back.


# %%
async def committed_order(pool: asyncpg.Pool, status: str = "pending") -> int:
    """A committed order of a new user (db_committed empties the tables after the test)."""
    async with pool.acquire() as conn:
        user_id = await shop.create_user(conn, f"{uuid.uuid4()}@example.com", "Buyer")
        return await shop.place_order(conn, user_id, "10.00", status)


async def cancel_twice(pool: asyncpg.Pool, cancel, order_id: int) -> tuple[bool, bool]:
    """A cancels and holds its transaction; B cancels meanwhile; A commits; B finishes. Returns (A, B)."""
    async with pool.acquire() as a, pool.acquire() as b:
        transaction_b = b.transaction()
        async with a.transaction():
            first = await cancel(a, order_id)
            await transaction_b.start()
            second = asyncio.create_task(cancel(b, order_id))
            try:
                await wait_until_blocked(a, b.get_server_pid(), second)
            except BaseException:
                second.cancel()
                raise
        try:  # A has committed: B goes on
            result = await asyncio.wait_for(second, 5)
        except BaseException:
            await transaction_b.rollback()
            raise
        await transaction_b.commit()
        return first, result


# %% [markdown]
# The correct, one-statement cancel: B waits for A's lock, then re-checks the row, finds it
# cancelled, and reports `False`.

# %%
# %%ipytest


async def test_one_statement_cancel_succeeds_once(db_committed):
    order_id = await committed_order(db_committed)
    assert await cancel_twice(db_committed, cancel_order_one_statement, order_id) == (True, False)


# %% [markdown]
# ### Pitfall: the check-then-act cancel, tested concurrently
#
# The same test, on the version that passes every sequential test:

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


async def test_check_then_act_cancel_succeeds_once(db_committed):
    order_id = await committed_order(db_committed)
    assert await cancel_twice(db_committed, cancel_order_check_then_act, order_id) == (True, False)


# %% [markdown]
# `(True, True)`: both requests were told "cancelled", so both would refund the order. B read
# `pending` (A had not committed yet), then waited for A's lock, and under READ COMMITTED its
# `UPDATE … WHERE id = $1` still matched. The fix is in the SQL, not in the test.

# %% [markdown]
# ## Retrying serialization failures, and testing the retry
#
# At SERIALIZABLE (or REPEATABLE READ) a transaction can be refused, and the only correct reaction is
# to run **the whole transaction again**, on fresh data. Not the failed statement: after an error
# the transaction is aborted. A small wrapper does it:

# %%
RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


async def run_serializable(pool: asyncpg.Pool, work, attempts: int = 3):
    """Run `work(conn)` in a SERIALIZABLE transaction; run it again if the server refuses it."""
    for attempt in range(1, attempts + 1):
        async with pool.acquire() as conn:
            try:
                async with conn.transaction(isolation="serializable"):
                    return await work(conn)
            except RETRYABLE:
                if attempt == attempts:
                    raise


# %% [markdown]
# A retry that is never exercised is a retry that doesn't work. The test makes the first attempt
# fail *on purpose and every time*: after the first attempt has read the total, another connection
# commits a change to the same row. The second attempt reads the new total.

# %%
# %%ipytest


async def test_a_refused_transaction_is_run_again_on_fresh_data(db_committed):
    order_id = await committed_order(db_committed)
    attempts = []

    async def add_five(conn):
        attempts.append(len(attempts) + 1)
        total = await conn.fetchval("SELECT total FROM orders WHERE id = $1", order_id)
        if len(attempts) == 1:  # someone else commits between our read and our write
            async with db_committed.acquire() as other:
                await other.execute("UPDATE orders SET total = total + 100 WHERE id = $1", order_id)
        await conn.execute("UPDATE orders SET total = $2 WHERE id = $1", order_id, total + 5)

    await run_serializable(db_committed, add_five)
    assert attempts == [1, 2]
    assert await db_committed.fetchval("SELECT total FROM orders WHERE id = $1", order_id) == Decimal("115.00")


# %% [markdown]
# ## Exercise 8.1: a cancel that records its event exactly once
#
# Write `cancel_order(conn, order_id)`: a pending or paid order becomes cancelled and the function
# returns `True`, **and** it records one event `("order_cancelled", {"order_id": order_id})` with
# `shop.record_event`, in the same transaction. Anything else: `False`, and no event. Two concurrent
# cancels of one order must give one `True` and **one** event, and no other connection may ever see the
# order cancelled without its event. An order another transaction holds is decided once that one ends, however
# long it takes (no time limit of your own). The checker drives two cancels statement by statement, in several
# orders (what `cancel_twice` does, and more).


# %% tags=["exercise"] exercise="8.1"
# Exercise 8.1: a cancel that records its event exactly once
async def cancel_order(conn: asyncpg.Connection, order_id: int) -> bool:
    raise NotImplementedError(
        "Exercise 8.1: cancel a pending or paid order, with exactly one order_cancelled event for it, even in a race"
    )


# %% tags=["solution"] exercise="8.1"
async def cancel_order(conn: asyncpg.Connection, order_id: int) -> bool:
    # The UPDATE checks and changes the row under its lock; a concurrent cancel waits, re-checks
    # the status, matches nothing and records nothing.
    async with conn.transaction():
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        if cancelled is None:
            return False
        await shop.record_event(conn, "order_cancelled", {"order_id": order_id})
        return True


# %% tags=["checker", "raises-exception"] exercise="8.1"
# %%ipytest --exercise 8.1
from hypothesis import example, given
from hypothesis import strategies as st

from coursedb.checks import blocked, cancel_if_waiting, cancelled_cleanly, examples, result_of, savepoint, until_idle
from coursedb.lockstep import Lockstep, in_transaction

FAR = 2_147_483_000  # ids far from 1, next to the largest an INTEGER column holds
ADD_ORDER = "INSERT INTO orders (id, user_id, total, status) VALUES ($1, $2, 10, $3)"
CANCEL_EVENTS = "SELECT count(*) FROM events WHERE kind = 'order_cancelled' AND payload = $1"
STATUS = "SELECT status::text FROM orders WHERE id = $1"
HOLD = 0.05  # seconds another transaction keeps the order while cancel_order waits for it: a limit of the call's
# own need not run out in that time (lockstep reads them: the server's, asyncpg's timeout=, asyncio's)
ORDER_ID = st.integers(-(2**31), 2**31 - 1)  # any id an INTEGER column holds
STATUSES = ["pending", "paid", "shipped", "cancelled"]


async def cancelled(conn, order_id: int, what: str) -> bool:
    result = await cancel_order(conn, order_id)
    assert type(result) is bool, f"cancel_order on {what} returned {result!r}: return True or False"
    return result


async def events_of(conn, order_id: int) -> int:
    return await conn.fetchval(CANCEL_EVENTS, {"order_id": order_id})


@pytest.mark.parametrize(("status", "cancellable"), [("pending", True), ("paid", True), ("shipped", False)])
async def test_a_cancel_records_one_event(db_conn, status, cancellable):
    """A pending or paid order is cancelled with one order_cancelled event {"order_id": <its id>}; any other order
    gets False and no event, and so does a second cancel of the same order."""
    user_id = await shop.create_user(db_conn, "ada@example.com", "Ada")
    await db_conn.execute(ADD_ORDER, FAR, user_id, status)
    await shop.record_event(db_conn, "order_paid", {"order_id": FAR})  # another kind of event, for the same order
    result = await cancelled(db_conn, FAR, f"a {status} order")
    assert result is cancellable, f"cancel_order on a {status} order returned {result}, expected {cancellable}"
    events = await events_of(db_conn, FAR)
    assert events == int(cancellable), f"{events} order_cancelled events {{'order_id': {FAR}}} for a {status} order"
    result = await cancelled(db_conn, FAR, "an order cancelled a moment ago")
    assert result is False, f"the second cancel of one {status} order returned {result}"
    events = await events_of(db_conn, FAR)
    assert events == int(cancellable), f"{events} order_cancelled events after cancelling a {status} order twice"


async def test_each_cancelled_order_gets_its_own_event(db_conn):
    """Cancelling two orders records one event for each, whatever events other orders already have."""
    user_id = await shop.create_user(db_conn, "ada@example.com", "Ada")
    for order_id in (FAR, FAR - 1):
        await db_conn.execute(ADD_ORDER, order_id, user_id, "pending")
        assert await cancelled(db_conn, order_id, "a pending order") is True, "a pending order can be cancelled"
    counts = [await events_of(db_conn, order_id) for order_id in (FAR, FAR - 1)]
    assert counts == [1, 1], f"after cancelling two orders, their order_cancelled events number {counts}"


async def test_cancelling_an_unknown_order(db_conn):
    """An id no order has: False, and no event."""
    assert await cancelled(db_conn, FAR, "an id no order has") is False, "an order that does not exist"
    assert await db_conn.fetchval("SELECT count(*) FROM events") == 0, "an event for an order that does not exist"


async def new_order(conn) -> int:
    """A committed pending order of a new user (written on one of the two connections the test holds)."""
    user_id = await shop.create_user(conn, f"{uuid.uuid4()}@example.com", "Buyer")
    return await shop.place_order(conn, user_id, "10.00")


def cancelling(order_id: int, wrap=None):
    """A call for the lockstep driver: cancel_order on its connection, in a transaction of its own if `wrap` says so."""

    async def call(conn):
        return await cancel_order(conn, order_id)

    return wrap(call) if wrap else call


def said(outcome, what: str) -> None:
    """A session that raised fails the test with one sentence, not asyncpg's traceback."""
    for name, error in outcome.raised().items():
        pytest.fail(f"{what}: cancel_order raised {error!r} on {name} ({outcome.timeline()})", pytrace=False)


async def test_two_concurrent_cancels_one_success_one_event(db_committed):
    """Two cancels of one order at the same moment, on two connections, statements interleaved in every order the
    checker tries (with and without a transaction around them): one returns True, and there is one event."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        race = Lockstep(A=a, B=b)
        for wrap_a, wrap_b in [(None, None), (in_transaction, None), (in_transaction, in_transaction)]:
            for first, head_start in race.schedules():
                order_id = await new_order(a)
                calls = {"A": cancelling(order_id, wrap_a), "B": cancelling(order_id, wrap_b)}
                outcome = await race.run(calls, first, head_start)
                said(outcome, "two concurrent cancels of one order")
                results, events = [outcome.results["A"], outcome.results["B"]], await events_of(a, order_id)
                assert sorted(results) == [False, True] and events == 1, (
                    f"two concurrent cancels of one pending order returned {results} and recorded {events} events; "
                    f"their statements ran in this order: {outcome.timeline()}"
                )
                for conn in (a, b):
                    assert not conn.is_in_transaction(), "cancel_order left its connection inside a transaction"


async def test_no_one_sees_the_cancel_without_its_event(db_committed):
    """The status change and the event commit together: another connection never sees the order cancelled without
    its event (nor the event without the cancel), after any statement of cancel_order."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await new_order(a)

        async def both_or_neither(other) -> str | None:
            status, events = await other.fetchval(STATUS, order_id), await events_of(other, order_id)
            if (status == "cancelled") != (events == 1):
                return f"another connection saw the order {status} with {events} order_cancelled events"
            return None

        outcome = await Lockstep(A=a, B=b).run({"A": cancelling(order_id)}, watch=both_or_neither)
        said(outcome, "one cancel")
        assert not outcome.problems, (
            f"{outcome.problems[0]} after one of these statements: {outcome.timeline()}. Do both in one transaction"
        )


@pytest.mark.parametrize(("change", "expected"), [("total = total + 1", True), ("status = 'shipped'", False)])
async def test_a_cancel_waits_for_whoever_holds_the_order(db_committed, change, expected):
    """While another transaction holds the order (it changes it and commits later), cancel_order waits for it, with no
    time limit of its own (the holder may take longer than any), then decides on what that transaction committed, and
    records an event only if it cancelled."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await new_order(a)

        async def holder(conn):
            await conn.execute(f"UPDATE orders SET {change} WHERE id = $1", order_id)

        calls = {"A": in_transaction(holder), "B": cancelling(order_id)}
        outcome = await Lockstep(A=a, B=b).run(calls, first="A", hold=HOLD)  # A commits once B has waited HOLD s
        said(outcome, "a cancel of an order another transaction holds")
        if outcome.gave_up:
            pytest.fail(
                f"cancel_order stopped waiting for the order while another transaction still held it "
                f"({outcome.timeline()}): wait for whoever holds it, however long, then decide",
                pytrace=False,
            )
        if outcome.limits:
            pytest.fail(
                f"cancel_order waited for the order with {outcome.limits[0].partition(' with ')[2]}, a time limit it "
                "set itself: whoever holds the order may keep it longer (a slow payment), and then a cancellable order "
                f"is reported as not cancellable; wait without a limit ({outcome.timeline()})",
                pytrace=False,
            )
        result, events = outcome.results["B"], await events_of(a, order_id)
        assert (result, events) == (expected, int(expected)), (
            f"another transaction held the order and set {change}; then cancel_order returned {result} and recorded "
            f"{events} events, expected {expected} and {int(expected)} ({outcome.timeline()})"
        )


async def test_a_cancel_cancelled_while_it_waits_changes_nothing(db_committed):
    """If its caller cancels cancel_order while it waits for an order another transaction holds (a request's time
    limit ran out), the call ends cancelled, leaves its connection ready for the next query at once (no transaction,
    no statement still running) and changes nothing, no event either, even once the holder is done."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await new_order(a)
        try:
            async with a.transaction():
                await a.execute("UPDATE orders SET total = total + 1 WHERE id = $1", order_id)
                await cancelled_cleanly(cancel_order(b, order_id), b, a, unchanged=lambda: state_of(b, order_id))
        finally:  # after the holder's transaction: a statement the cancelled call left running can end now
            await until_idle(b)
        status, events = await state_of(a, order_id)
        assert (status, events) == ("pending", 0), (
            f"cancel_order was cancelled while it waited for the order, yet once the holder committed the order was "
            f"{status} with {events} order_cancelled events: a cancelled call changes nothing"
        )


async def state_of(conn, order_id: int) -> tuple[str, int]:
    return await conn.fetchval(STATUS, order_id), await events_of(conn, order_id)


PROBES = {  # what other requests do meanwhile, none of it to the order being cancelled: (SQL, which id it takes)
    "place another order for the same user": ("INSERT INTO orders (user_id, total) VALUES ($1, 1)", "user"),
    "change the user's row": ("UPDATE users SET name = name || '' WHERE id = $1", "user"),
    "change another order of that user": ("UPDATE orders SET total = total + 1 WHERE id = $1", "other"),
    "record another order's event": ("INSERT INTO events (kind, payload) VALUES ('order_paid', $1)", "event"),
}


async def a_user_with_two_orders(conn, status: str) -> dict[str, int]:
    """Committed: a new user, the order to cancel (`status`), another pending order of the same user."""
    user_id = await shop.create_user(conn, f"{uuid.uuid4()}@example.com", "Two orders")
    order_id = await shop.place_order(conn, user_id, "10.00", status)
    other = await shop.place_order(conn, user_id, "5.00")
    return {"user": user_id, "order": order_id, "other": other, "event": {"order_id": other}}


async def test_locks_only_the_order_it_cancels(db_committed):
    """cancel_order locks only the order it cancels, in both orders, several rounds: while the caller's transaction
    around it is still open, other transactions can at once place an order for the same user, change the user's row,
    change the user's other orders and record other events; and while other transactions do those things,
    cancel_order does not wait."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        for status in ("pending", "paid"):
            ids = await a_user_with_two_orders(a, status)
            async with savepoint(a):  # the caller's transaction, open while others try
                await cancelled(a, ids["order"], f"a {status} order")
                held_up = await blocked(b, {what: (sql, ids[key]) for what, (sql, key) in PROBES.items()})
            if held_up:
                pytest.fail(
                    f"after cancel_order, while the caller's transaction was still open, another transaction could not "
                    f"{' nor '.join(held_up)} (it waited for a lock cancel_order took): lock only the order you cancel",
                    pytrace=False,
                )
            ids = await a_user_with_two_orders(a, status)
            async with savepoint(b):  # another request is busy with the same user, and not yet done
                for sql, key in PROBES.values():
                    await b.execute(sql, ids[key])
                task, waited = await cancel_if_waiting(cancel_order(a, ids["order"]), a, b)
            if waited:
                pytest.fail(
                    f"cancel_order of a {status} order waited for another transaction that had placed an order for the "
                    "same user, changed the user's row and another of their orders and recorded an event, but not "
                    "touched this order: lock only the order you cancel",
                    pytrace=False,
                )
            result = await result_of(task, f"cancel_order of a {status} order")
            assert result is True, f"cancel_order of a {status} order returned {result!r}, expected True"


@examples(10)
@given(
    orders=st.lists(st.tuples(ORDER_ID, st.sampled_from(STATUSES)), max_size=4, unique_by=lambda order: order[0]),
    which=st.integers(0, 4),
    absent=ORDER_ID,
)
@example(orders=[(-7, "pending"), (0, "paid")], which=0, absent=1)
@example(orders=[(0, "paid"), (2**31 - 1, "pending")], which=0, absent=-(2**31))
@example(orders=[(-(2**31), "shipped"), (1, "paid")], which=0, absent=2)
async def test_any_orders_any_id(db_conn, orders, which, absent):
    """For any orders (ids anywhere an INTEGER holds: negative, 0, the largest; any statuses) and any id: True, that
    order cancelled and one event {"order_id": id} if it was pending or paid; else False and no event; every other
    order as it was."""
    async with savepoint(db_conn):
        user_id = await shop.create_user(db_conn, "any@example.com", "Any")
        await db_conn.executemany(ADD_ORDER, [(order_id, user_id, status) for order_id, status in orders])
        target = orders[which][0] if which < len(orders) else absent
        before = dict(orders)
        result = await cancelled(db_conn, target, f"order {target} of {before}")
        expected = before.get(target) in ("pending", "paid")
        after = {row["id"]: row["status"] for row in await db_conn.fetch("SELECT id, status::text FROM orders")}
        events = [dict(row["payload"]) for row in await db_conn.fetch("SELECT payload FROM events")]
        wanted = {**before, target: "cancelled"} if expected else before
        assert (result, after, events) == (expected, wanted, [{"order_id": target}] if expected else []), (
            f"orders (id: status) {before}; cancel_order(conn, {target}) returned {result}, left {after} and the "
            f"events {events}; expected {expected}, {wanted} and {[{'order_id': target}] if expected else []}"
        )


async def test_errors_reach_the_caller(db_conn):
    """An error reaches the caller (here: the caller's transaction has already failed): cancel_order raises it rather
    than answering False, which would say the order cannot be cancelled."""
    user_id = await shop.create_user(db_conn, "ada@example.com", "Ada")
    await db_conn.execute(ADD_ORDER, FAR, user_id, "pending")
    async with savepoint(db_conn):
        with contextlib.suppress(asyncpg.DivisionByZeroError):
            await db_conn.execute("SELECT 1 / 0")  # the transaction has failed: every statement is refused now
        try:
            result = await cancel_order(db_conn, FAR)
        except asyncpg.PostgresError:
            return
    pytest.fail(
        f"in a transaction that had already failed (the server refuses every statement), cancel_order returned "
        f"{result!r}: let errors reach the caller",
        pytrace=False,
    )


# %% [markdown] tags=["hint"] exercise="8.1"
# <details><summary>Hint 1</summary>
#
# Two things must happen together or not at all: the order changes, and its event is written. And only the call
# that really changed the order may write the event: what tells *this* call that it did?
# </details>
#
# <details><summary>Hint 2</summary>
#
# Exercise 7.1's one-statement `UPDATE … RETURNING id` answers that: it returns the id only to the call that
# changed the row. Put it and `shop.record_event` inside `async with conn.transaction():`, and record only when
# the `UPDATE` returned something.
# </details>


# %% [markdown]
# ## Exercise 8.2: a job queue that never hands out a job twice
#
# Write `claim_next_shipment(conn)`: inside the caller's transaction, take the **oldest** (lowest id)
# `paid` order that no other transaction has claimed, set it to `shipped`, and return its id; return
# `None` when there is none. Two workers with open transactions must get different orders, and the
# second must not wait for the first: the checker asks the server whether it does.


# %% tags=["exercise"] exercise="8.2"
# Exercise 8.2: a job queue that never hands out a job twice
async def claim_next_shipment(conn: asyncpg.Connection) -> int | None:
    raise NotImplementedError(
        "Exercise 8.2: give each worker the oldest paid order nobody else is shipping, never making it wait"
    )


# %% tags=["solution"] exercise="8.2"
async def claim_next_shipment(conn: asyncpg.Connection) -> int | None:
    # SKIP LOCKED: a row another worker holds is passed over instead of waited for.
    return await conn.fetchval(
        """
        UPDATE orders SET status = 'shipped'
        WHERE id = (SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id
        """
    )


# %% tags=["checker", "raises-exception"] exercise="8.2"
# %%ipytest --exercise 8.2
import random

from coursedb.checks import cancel_if_waiting, savepoint
from coursedb.lockstep import Lockstep, in_transaction

FAR = 2_000_000_000  # ids far from 1
ADD_ORDERS = """
    INSERT INTO orders (id, user_id, total, status, created_at)
    SELECT id, $2, 10, status::order_status, now() - make_interval(secs => id - $3)
    FROM unnest($1::int[], $4::text[]) AS o(id, status)
"""  # a higher id is made to look older: the oldest order is the one with the lowest id, whatever created_at says


async def add_orders(conn, user_id: int, orders: dict[int, str]) -> None:
    """Insert {id: status} in a shuffled order (rows do not come back sorted by id unless asked to)."""
    ids = list(orders)
    random.Random(8).shuffle(ids)
    await conn.execute(ADD_ORDERS, ids, user_id, FAR, [orders[i] for i in ids])


async def claimed(conn, what: str) -> int | None:
    result = await claim_next_shipment(conn)
    assert result is None or type(result) is int, f"claim_next_shipment returned {result!r} ({what}): an id or None"
    return result


async def test_claims_the_oldest_paid_order_once(db_conn):
    """Claims take the paid orders by lowest id (ids of different lengths, 9 and 10, and far from 1; rows inserted
    shuffled, created_at no help), ship each once and return its id (an order shipped before, with a higher id, is
    not it), return None when none is left, and touch no pending, cancelled or shipped order."""
    user_id = await shop.create_user(db_conn, "ada@example.com", "Ada")
    orders = {
        FAR + 1: "pending", FAR + 7: "paid", 10: "paid", FAR + 3: "paid", FAR + 2: "cancelled", 9: "paid",
        FAR + 12: "paid", FAR + 20: "shipped",
    }  # fmt: skip
    await add_orders(db_conn, user_id, orders)
    paid = [9, 10, FAR + 3, FAR + 7, FAR + 12]
    for expected in paid:
        got = await claimed(db_conn, f"paid orders left: {[i for i in paid if i >= expected]}")
        assert got == expected, (
            f"claim_next_shipment returned {got}, expected {expected}: the paid order with the lowest id (paid orders "
            f"left: {[i for i in paid if i >= expected]}; {FAR + 20} was shipped before)"
        )
    assert await claimed(db_conn, "no paid order left") is None, "no paid order left: expected None"
    rows = await db_conn.fetch("SELECT id, status::text FROM orders ORDER BY id")
    statuses = {row["id"]: row["status"] for row in rows}
    expected = {i: "shipped" if i in paid else status for i, status in orders.items()}
    assert statuses == expected, f"after claiming every paid order, the orders (id: status) are {statuses}"


async def fresh_queue(conn, orders: dict[int, str]) -> None:
    """Committed: only these orders, all of one user."""
    await conn.execute("DELETE FROM orders")
    user_id = await conn.fetchval("SELECT id FROM users LIMIT 1") or await shop.create_user(conn, "q@example.com", "Q")
    await add_orders(conn, user_id, orders)


async def claim(conn):
    return await claim_next_shipment(conn)


PLANS = {  # a claim must be right whatever plan the server picks for its query (a bigger table may change it)
    "": "",
    " with index scans off": "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off",
}


async def test_a_claim_passes_over_every_order_others_hold(db_committed):
    """However many orders another worker's transaction holds (it claimed 1, then 5, then all 7 paid ones in a row),
    whatever plan the server picks, a claim gets the oldest paid order nobody holds, without waiting, and None only
    when every paid order is held."""
    queue = {FAR + 14: "paid", FAR + 3: "paid", FAR + 8: "pending", FAR + 11: "paid", FAR + 1: "paid", FAR + 20: "paid"}
    queue.update({FAR + 6: "cancelled", FAR + 9: "paid", FAR + 2: "shipped", FAR + 17: "paid"})
    paid = sorted(i for i, status in queue.items() if status == "paid")
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        for batch, plan in [(1, ""), (1, " with index scans off"), (5, ""), (5, " with index scans off"), (7, "")]:
            await fresh_queue(a, queue)
            async with savepoint(a):  # worker A's transaction, open: it holds what it claimed
                if PLANS[plan]:
                    await a.execute(PLANS[plan])
                held = [await claimed(a, f"worker A's claim {n + 1} in one transaction") for n in range(batch)]
                assert held == paid[:batch], (
                    f"one worker claimed {batch} times in a row{plan}: {held}, expected {paid[:batch]}"
                )
                async with savepoint(b):  # worker B's transaction
                    if PLANS[plan]:
                        await b.execute(PLANS[plan])
                    task, waited = await cancel_if_waiting(claim_next_shipment(b), b, a)
            if waited:
                pytest.fail(
                    f"while worker A's transaction held the orders {held}, worker B's claim waited for it{plan}: a "
                    "worker must pass over the orders another one holds, not wait for them",
                    pytrace=False,
                )
            if task.exception() is not None:
                pytest.fail(f"worker B's claim raised {task.exception()!r} while A held {held}{plan}", pytrace=False)
            got, expected = task.result(), (paid[batch] if batch < len(paid) else None)
            assert got == expected, (
                f"while worker A's transaction held the orders {held}, worker B's claim returned {got}{plan}"
                + (", although an order nobody held was left" if got is None else "")
                + f"; expected {expected}: the oldest paid order nobody holds (paid orders: {paid})"
            )


async def test_two_workers_get_different_orders_without_waiting(db_committed):
    """Two workers claim at the same moment, each in its transaction, in every order the checker tries: they get the
    two oldest paid orders, one each, neither waits for the other, and nothing stays locked once they commit."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        race = Lockstep(A=a, B=b)
        for first, head_start in race.schedules():
            await fresh_queue(a, {FAR + 5: "paid", FAR + 4: "pending", FAR + 9: "paid", FAR + 6: "paid"})
            outcome = await race.run({"A": in_transaction(claim), "B": in_transaction(claim)}, first, head_start)
            assert not outcome.waited, (  # first: an error after a wait (a deadlock) comes from the wait
                f"{outcome.waited[0]}: a worker must pass over the orders another one holds, not wait for them "
                f"({outcome.timeline()})"
            )
            for name, error in outcome.raised().items():
                why = "a worker passes over the orders another one holds, it does not fail on them. "
                why = why if isinstance(error, asyncpg.LockNotAvailableError) else ""
                pytest.fail(f"worker {name} raised {error!r}: {why}({outcome.timeline()})", pytrace=False)
            got = sorted(r - FAR for r in outcome.results.values() if r is not None)
            assert got == [5, 6], (
                f"two workers claimed the orders {got} (id - {FAR}), expected the two oldest paid ones, 5 and 6, one "
                f"each ({outcome.timeline()})"
            )
            held = await a.fetchval(
                "SELECT count(*) FROM pg_locks WHERE pid = ANY($1) AND locktype = 'advisory'",
                [a.get_server_pid(), b.get_server_pid()],
            )
            assert held == 0, f"{held} advisory locks still held after the workers' transactions ended"


async def test_a_claim_rolled_back_frees_the_order(db_committed):
    """A worker whose transaction rolls back gives its order back: the next claim, by another worker, gets it."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        await fresh_queue(a, {FAR + 9: "paid", FAR + 5: "paid"})
        transaction = a.transaction()
        await transaction.start()
        try:
            first = await claimed(a, "worker A")
        finally:
            await transaction.rollback()
        async with b.transaction():
            again = await claimed(b, "worker B, after worker A rolled back")
        assert first == again == FAR + 5, (
            f"worker A claimed {first} and rolled back; then worker B claimed {again}, expected {FAR + 5} again"
        )


# %% [markdown] tags=["hint"] exercise="8.2"
# <details><summary>Hint 1</summary>
#
# Two things at once: a worker must *hold* the order it picks (so no one else takes it), and must not wait for an
# order someone else holds. The job-queue section above shows a lock clause that does both.
# </details>
#
# <details><summary>Hint 2</summary>
#
# In a subquery, pick the lowest-id paid order with `ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`; an outer
# `UPDATE orders SET status = 'shipped' WHERE id = (…) RETURNING id` ships it and returns its id, or nothing.
# </details>

# %% [markdown]
# Stuck? Open the hints under a checker one at a time. The model answers are not in this notebook: try first, then
# ask your instructor or compare with a classmate.

# %%
if not conn.is_closed():  # this cell may run twice
    await coursedb.empty_tables(conn)
    await conn.close()

# %% [markdown]
# ## Key points
#
# - `db_conn` is one connection in one transaction: no test on it can show a race. Use two pool
#   connections with committed rows (`db_committed`), and give both connections back.
# - Make races deterministic: drive both transactions statement by statement; when one must wait,
#   run it as a task and ask the server (`pg_blocking_pids`) with a time limit. Never sleep and hope.
# - Read-then-write loses updates and double-cancels at READ COMMITTED. Check and change in one
#   statement, or lock what you read with `SELECT … FOR UPDATE`.
# - Job queues: `FOR UPDATE SKIP LOCKED`. Deadlocks: lock rows in one order for everyone.
# - REPEATABLE READ stops lost updates, only SERIALIZABLE stops write skew; both can refuse a
#   transaction with `SerializationError`. Retry the whole transaction, and test the retry by
#   forcing the conflict on the first attempt.


# %% [markdown]
# ## Where you stand
#
# Your checker runs in this notebook, as recorded (never your code); `show()` without a number, or
# `python3 course.py progress`, shows the whole course.

# %% tags=["progress"]
from coursedb.progress import show

show("08")
