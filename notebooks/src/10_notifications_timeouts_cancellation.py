# %% [markdown]
# # 10 · Notifications, timeouts and cancellation
#
# **You will learn**
# - that `NOTIFY` is delivered only on `COMMIT`, so under `db_conn` a notification never arrives, and how
#   to test notifications properly;
# - the three time limits (`command_timeout`, `statement_timeout`, `asyncio.wait_for`), and the state a
#   connection is in after each;
# - what happens to a query when its task is cancelled;
# - asyncpg's prepared statement cache, `InvalidCachedStatementError`, and `statement_cache_size=0`;
# - `copy_records_to_table` against `executemany` for bulk test data;
# - property-based tests with Hypothesis on a database: a savepoint per example.
#
# *About 60 minutes.*

# %%
from coursedb.notebook import setup

db_url = setup()

# %% [markdown]
# ## The idea
#
# These are the things that happen *between* statements: a message to another connection, a clock that
# runs out, a task that is cancelled, a plan the server prepared earlier. Each one behaves differently
# inside a transaction, which is exactly where rollback-isolated tests run. So every demo below says what
# happens with and without a transaction around it, and every wait has a bound.

# %%
import asyncio
import contextlib
import time
from decimal import Decimal

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coursedb
import shop

conn = await asyncpg.connect(db_url)  # this notebook's connection, closed before the exercises


async def within(seconds: float, awaitable):
    """Await `awaitable`, or fail after `seconds` instead of hanging (what wait_for does, shorter tracebacks)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        raise AssertionError(f"still waiting after {seconds} s")
    return task.result()


@contextlib.asynccontextmanager
async def another_connection(**options):
    """A second connection for one demo, always closed again."""
    other = await asyncpg.connect(db_url, **options)
    try:
        yield other
    finally:
        await other.close()


# %% [markdown]
# ## `LISTEN`/`NOTIFY`: delivered on `COMMIT`
#
# `conn.add_listener(channel, callback)` sends `LISTEN channel` and calls `callback` for every
# notification on it. We put the payloads in a queue. Another connection notifies **inside a transaction**;
# before the commit we wait 0.2 s for the notification (it cannot come: that wait is a bound, not a hope), then
# commit and wait again:

# %%
received = asyncio.Queue()


def on_notification(connection, pid, channel, payload):
    received.put_nowait(payload)


await conn.add_listener("orders", on_notification)


async def next_notification(timeout: float) -> str | None:
    """The next payload, or None if none arrives within `timeout` seconds."""
    try:
        return await asyncio.wait_for(received.get(), timeout)
    except asyncio.TimeoutError:
        return None


async with another_connection() as sender:
    transaction = sender.transaction()
    await transaction.start()
    await sender.execute("SELECT pg_notify('orders', 'order 1 placed')")
    print("before COMMIT:", await next_notification(0.2))
    await transaction.commit()
    print("after COMMIT: ", await next_notification(5))
await conn.remove_listener("orders", on_notification)  # done with it: a listener left behind keeps queueing

# %% [markdown]
# PostgreSQL queues a notification with the transaction and delivers it when the transaction commits;
# a rollback throws it away. A test on `db_conn` runs inside a transaction that is always rolled back,
# so **a notification sent under `db_conn` is never delivered**. The test below listens on a second pool
# connection (the notebook's listener lives on the notebook's event loop, the test runs on its own) and
# waits a bounded time:

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


async def test_a_notification_under_db_conn(db_conn, db_pool):
    payloads = asyncio.Queue()

    def remember(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    async with db_pool.acquire() as listening:
        await listening.add_listener("orders", remember)
        await db_conn.execute("SELECT pg_notify('orders', 'from db_conn')")
        try:
            payload = await asyncio.wait_for(payloads.get(), 0.5)
        except asyncio.TimeoutError:
            payload = None
        await listening.remove_listener("orders", remember)
    assert payload == "from db_conn"


# %% [markdown]
# `None`: nothing came. (Nothing will: the fixture rolls the transaction back.) Notifications need what
# notebook 08 needed for races: **committed** work on one connection, a listener on another. With
# `db_committed`, the pool gives two connections; both go back to it, and the listener is removed:

# %%
# %%ipytest


async def test_a_committed_notification_arrives(db_committed):
    payloads = asyncio.Queue()

    def remember(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    async with db_committed.acquire() as listening, db_committed.acquire() as working:
        await listening.add_listener("orders", remember)
        try:
            async with working.transaction():
                user_id = await shop.create_user(working, "ada@example.com", "Ada")
                order_id = await shop.place_order(working, user_id, "10.00")
                await working.execute("SELECT pg_notify('orders', $1)", str(order_id))
            assert await asyncio.wait_for(payloads.get(), 5) == str(order_id)  # bounded: never hangs
        finally:
            await listening.remove_listener("orders", remember)  # the same callback object that was added


# %% [markdown]

# ## Three time limits
#
# | limit | who enforces it | what you get |
# |---|---|---|
# | `command_timeout` / `timeout=` | asyncpg, on the client | `TimeoutError`; asyncpg asks the server to cancel the query |
# | `statement_timeout` | the server | `asyncpg.QueryCanceledError` |
# | `asyncio.wait_for` (or `asyncio.timeout`, Python 3.11+) | asyncio, cancelling the task | `TimeoutError`; asyncpg cancels the query on the server too |
#
# Each against `pg_sleep(10)`, which never finishes within 0.1 s, on a connection with no transaction, then
# inside one. After each: is the connection usable, and is the transaction still usable?


# %%
async def slow_query(conn: asyncpg.Connection, how: str) -> None:
    if how == "command_timeout":
        await conn.fetchval("SELECT pg_sleep(10)", timeout=0.1)
    elif how == "statement_timeout":
        await conn.execute("SET statement_timeout = '100ms'")  # RESET below, once the transaction is over
        await conn.fetchval("SELECT pg_sleep(10)")
    else:
        await asyncio.wait_for(conn.fetchval("SELECT pg_sleep(10)"), 0.1)


async def after(conn: asyncpg.Connection) -> str:
    try:
        return f"next query ok ({await conn.fetchval('SELECT 1')})"
    except asyncpg.PostgresError as exc:
        return f"next query: {type(exc).__name__}"


for how in ("command_timeout", "statement_timeout", "asyncio.wait_for"):
    for in_transaction in (False, True):
        if in_transaction:
            transaction = conn.transaction()
            await transaction.start()
        try:
            await slow_query(conn, how)
        except (asyncio.TimeoutError, asyncpg.QueryCanceledError) as exc:
            outcome = type(exc).__name__
        state = await after(conn)
        if in_transaction:
            await transaction.rollback()
        await conn.execute("RESET statement_timeout")
        print(f"{how:18} {'in a transaction' if in_transaction else 'no transaction':17} {outcome:20} {state}")

# %% [markdown]
# All three stop the query on the server (the client ones send PostgreSQL a cancel request), and the
# connection stays usable. Inside a transaction, though, a cancelled statement is an error like any
# other: the transaction is **aborted** and refuses everything until `ROLLBACK` (notebook 04). That is
# also why the loop resets `statement_timeout` only after the rollback: inside, even `RESET` is refused.
#
# A pool gives a timed-out connection back clean: on release it rolls back an open transaction and runs
# `RESET ALL`. Code that catches the timeout and carries on *inside the transaction* is the mistake:

# %% tags=["raises-exception"]
async with conn.transaction():
    await conn.execute("INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada')")
    try:  # the server's own limit: a client's cancel request can come before the query starts, and be lost
        await conn.execute("SET LOCAL statement_timeout = '100ms'")
        await conn.fetchval("SELECT count(*), pg_sleep(10) FROM orders")  # sleeps even with no orders
    except asyncpg.QueryCanceledError:
        print("the report timed out; carry on without it")
    await conn.execute("INSERT INTO users (email, name) VALUES ('grace@example.com', 'Grace')")

# %% [markdown]
# Give a statement that may time out a savepoint of its own (`async with conn.transaction():` around
# it), or let the whole transaction fail and retry it.
#
# ## Cancelling a task in the middle of a query
#
# A web framework cancels the handler's task when the client goes away. What happens to the query it was
# running? Start one, wait (bounded) until the server says it is running, cancel the task:

# %%
SERVER_STATE = "SELECT state FROM pg_stat_activity WHERE pid = $1"

async with another_connection() as observer:

    async def server_state(until: str) -> str:
        """The connection's state on the server, polled until it is `until` (5 s at most)."""
        for _ in range(500):
            state = await observer.fetchval(SERVER_STATE, conn.get_server_pid())
            if state == until:
                break
            await asyncio.sleep(0.01)
        return state

    query = asyncio.create_task(conn.fetchval("SELECT pg_sleep(10)"))
    print("on the server:  ", await server_state(until="active"))
    query.cancel()
    try:
        await query
    except asyncio.CancelledError:
        print("the task:       ", "cancelled")
    print("on the server:  ", await server_state(until="idle"), "(within 5 s: pg_sleep(10) did not finish)")
    print("the connection: ", await after(conn))

# %% [markdown]
# asyncpg raises `CancelledError` at once and sends the server a cancel request (over a separate, short
# connection); the query stops a moment later, and the connection's next query waits for that. So the
# connection is usable afterwards, and the server is not left running a query nobody waits for.
#
# ## Prepared statements and their cache
#
# asyncpg **prepares** every query it runs (parse and plan once, then execute with parameters) and keeps
# up to 100 prepared statements per connection, keyed by the SQL text. You can see them on the server:

# %%
await conn.execute("DROP TABLE IF EXISTS labels; CREATE TABLE labels (id int, label text)")
await conn.fetch("SELECT * FROM labels")
prepared = await conn.fetch("SELECT statement FROM pg_prepared_statements")
print("SELECT * FROM labels is prepared:", "SELECT * FROM labels" in [row["statement"] for row in prepared])

# %% [markdown]
# When the schema changes under a prepared statement (a column changes type, say), its result no longer
# matches. Outside a transaction asyncpg notices, prepares again and retries, and you never see it:

# %%
async with another_connection() as migrator:  # a migration deployed while this connection stays open
    await migrator.execute("ALTER TABLE labels ALTER COLUMN id TYPE bigint")
    print("outside a transaction:", await conn.fetch("SELECT * FROM labels"), "(prepared again, quietly)")
    await migrator.execute("ALTER TABLE labels ALTER COLUMN id TYPE int")  # and changed back

# %% [markdown]
# Inside a transaction it cannot retry (the failed statement has aborted the transaction), so it raises
# `InvalidCachedStatementError`. A test suite, or an app, that keeps its connections across a migration meets it:

# %% tags=["raises-exception"]
async with conn.transaction():
    await conn.fetch("SELECT * FROM labels")

# %% [markdown]
# `statement_cache_size=0` switches the cache off: every query is prepared unnamed, used, and forgotten.
# That costs a planning round per query, and it is what **PgBouncer in transaction mode** needs: there, each
# transaction may run on a different server connection, so a statement prepared on one is missing on the next
# (`prepared statement "__asyncpg_stmt_1__" does not exist`). We have no PgBouncer here, but the cache's
# effect shows on our server:

# %%
async with another_connection(statement_cache_size=0) as uncached:
    await uncached.fetch("SELECT * FROM labels")
    print("statements kept on the server:", await uncached.fetchval("SELECT count(*) FROM pg_prepared_statements"))
    await conn.execute("ALTER TABLE labels ALTER COLUMN id TYPE bigint")  # the schema changes again
    async with uncached.transaction():
        print("in a transaction after a schema change:", await uncached.fetch("SELECT * FROM labels"))

# %% [markdown]
# In tests: when a test changes the schema (a migration test, notebook 07) while a pool keeps its
# connections, either run the migration before the pool exists, or call `pool.expire_connections()`
# afterwards: each connection is replaced, with an empty cache, the next time it is acquired.

# %%
pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
await pool.fetch("SELECT * FROM labels")  # now cached on the pool's one connection
await conn.execute("ALTER TABLE labels ALTER COLUMN id TYPE int")
await pool.expire_connections()
async with pool.acquire() as pooled, pooled.transaction():
    print("after expire_connections, in a transaction:", await pooled.fetch("SELECT * FROM labels"))
await pool.close()

# %% [markdown]
# ## Bulk test data: `copy_records_to_table`
#
# A test that needs thousands of rows should not send thousands of `INSERT`s. `executemany` sends one
# statement with many parameter sets (pipelined, still a row at a time on the server); `COPY` streams all rows
# in one command. Both inside a transaction that is rolled back, timed side by side:

# %%
users = [(f"user{i}@example.com", f"User {i}") for i in range(5000)]


async def timed(load) -> float:
    transaction = conn.transaction()
    await transaction.start()
    try:
        started = time.perf_counter()
        await load()
        elapsed = time.perf_counter() - started
        assert await conn.fetchval("SELECT count(*) FROM users") == len(users)
        return elapsed
    finally:
        await transaction.rollback()


with_executemany = await timed(lambda: conn.executemany("INSERT INTO users (email, name) VALUES ($1, $2)", users))
with_copy = await timed(lambda: conn.copy_records_to_table("users", records=users, columns=["email", "name"]))
print(f"{len(users)} rows each way; COPY took {with_copy / with_executemany:.2f}× the time of executemany")

# %% [markdown]
# On the machines we tried, `COPY` needs a fraction of `executemany`'s time (the exact ratio depends on the
# machine, so the saved output hides it). `copy_records_to_table` takes tuples in the order of `columns`, uses
# the binary format, and fires no rules. Column defaults still apply, and so do constraints: a duplicate email
# fails the whole `COPY`.
#
# ## Property-based tests with Hypothesis
#
# [Hypothesis](https://hypothesis.readthedocs.io) generates many inputs for one test and shrinks a failure to
# the smallest input that still fails. A property of `shop.order_total`: for any list of orders, it is the sum
# of those not cancelled. The natural first attempt uses `db_conn` and a `user` fixture on top of it (notebook 07):

# %%
amounts = st.decimals(min_value=0, max_value=Decimal("99999.99"), places=2)
order_lists = st.lists(st.tuples(amounts, st.sampled_from(["pending", "paid", "shipped", "cancelled"])), max_size=5)
FEW_STABLE_EXAMPLES = settings(max_examples=15, derandomize=True, database=None, deadline=None)


@pytest.fixture
async def user(db_conn) -> int:
    return await shop.create_user(db_conn, "ada@example.com", "Ada")


# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


@FEW_STABLE_EXAMPLES
@given(orders=order_lists)
async def test_order_total_is_the_sum_of_orders_not_cancelled(db_conn, user, orders):
    for total, status in orders:
        await shop.place_order(db_conn, user, total, status)
    assert await shop.order_total(db_conn, user) == sum(t for t, s in orders if s != "cancelled")


# %% [markdown]
# Hypothesis refuses: `db_conn` and `user` are made **once per test function**, but the test body runs once
# per *example*. Every example would share one transaction and see the orders of the examples before it. The
# `function_scoped_fixture` health check exists for exactly this. Switch it off without doing anything about
# it, and the property fails for an example that is perfectly fine on its own: the earlier examples' orders
# are still there.

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


@settings(FEW_STABLE_EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(orders=order_lists)
async def test_order_total_is_the_sum_of_orders_not_cancelled(db_conn, user, orders):
    for total, status in orders:
        await shop.place_order(db_conn, user, total, status)
    assert await shop.order_total(db_conn, user) == sum(t for t, s in orders if s != "cancelled")


# %% [markdown]
# The fix is a **savepoint per example**, rolled back at the end of each one: every example starts from the
# state the fixture set up. Then, and only then, suppressing the health check is honest:

# %%
# %%ipytest


@settings(FEW_STABLE_EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(orders=order_lists)
async def test_order_total_is_the_sum_of_orders_not_cancelled(db_conn, user, orders):
    savepoint = db_conn.transaction()  # inside db_conn's transaction: a SAVEPOINT
    await savepoint.start()
    try:
        for total, status in orders:
            await shop.place_order(db_conn, user, total, status)
        assert await shop.order_total(db_conn, user) == sum(t for t, s in orders if s != "cancelled")
    finally:
        await savepoint.rollback()  # back to the state the fixtures made: Ada, no orders


# %%
await conn.close()  # the exercises' checkers use two pool connections, and one more for a broken answer

# %% [markdown]
# Settings worth knowing for database tests: `deadline=None` (a query on a busy machine is not a bug),
# `database=None` (or Hypothesis writes `.hypothesis/` into the working directory), and here
# `derandomize=True` so the failing example shown is the same on every run.
#
# ## Exercise 10.1: wait for one notification, with a bound
#
# Write `wait_for_notification(conn, channel, timeout)`: listen on `channel` with `conn.add_listener`, return
# the payload of the first notification that arrives, exactly as it came (any text: spaces, newlines, empty), or
# `None` if none arrives within `timeout` seconds.
# Return as soon as a notification arrives (not at the end of the timeout, nor at the next step of a poll), and
# with none, as soon as the timeout has passed. Whatever happens (a payload, the timeout, or your task being
# cancelled), stop listening before returning (`remove_listener` with the same callback) and leave no task of
# yours running: asyncpg warns when a connection goes back to a pool with a listener still on it, and the next
# call on the same connection must work as well as the first.


# %% tags=["exercise"] exercise="10.1"
# Exercise 10.1: wait for one notification, with a bound
async def wait_for_notification(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    raise NotImplementedError(
        "Exercise 10.1: the first payload on `channel` within `timeout` seconds (else None), then stop listening"
    )


# %% tags=["solution"] exercise="10.1"
async def wait_for_notification(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return await asyncio.wait_for(payloads.get(), timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, on_notification)


# %% tags=["checker", "raises-exception"] exercise="10.1"
# %%ipytest --exercise 10.1
from hypothesis import example

from coursedb.checks import examples, timed

LISTENING = "SELECT coalesce(array_agg(c ORDER BY c), '{}') FROM pg_listening_channels() AS c"
CHANNEL = "Jobs: Ünïcode"  # a channel name that needs quoting in SQL
NOTIFY = "SELECT pg_notify($1, $2)"
LAST_QUERY = "SELECT state, query FROM pg_stat_activity WHERE pid = $1"


async def still_listening(conn, when: str) -> None:
    channels = await conn.fetchval(LISTENING)
    assert channels == [], f"the connection still listens on {channels} {when}: stop listening whatever happens"


def tasks_left(before: set) -> list:
    """Tasks started since `before` that are still running."""
    return [task for task in asyncio.all_tasks() - before if not task.done()]


async def no_task_left(before: set, when: str) -> None:
    await asyncio.sleep(0)  # one more turn of the loop: a task cancelled on the way out ends now
    left = tasks_left(before)
    assert not left, (
        f"wait_for_notification left {len(left)} task(s) of its own running {when} ({left[0].get_coro()!r}): "
        "cancel (or await) every task it starts before returning"
    )


async def until_listening(observer, listening, waiting: asyncio.Task, seconds: float = 0.5) -> None:
    """Until the server says `listening`'s LISTEN is done (or the call ended): the moment it can hear. Half a
    second at most by default: a call that never sends LISTEN (asyncpg thinks it still listens) gets the
    notifications anyway, which keep coming until it returns."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        last = await observer.fetchrow(LAST_QUERY, listening.get_server_pid())
        if waiting.done() or (last["state"] == "idle" and last["query"].lstrip().upper().startswith("LISTEN")):
            return
        await asyncio.sleep(0.01)


async def notify_until_heard(working, waiting: asyncio.Task, *payloads: str, seconds: float) -> None:
    """Send the payloads (in one transaction) until the waiting call returns (it may not be listening yet), for
    `seconds` at most."""
    for _ in range(int(seconds / 0.05) + 1):
        async with working.transaction():
            for payload in payloads:
                await working.execute(NOTIFY, CHANNEL, payload)
        done, _ = await asyncio.wait({waiting}, timeout=0.05)
        if done:
            return


async def heard(listening, working, *payloads: str, timeout: float = 0.5) -> tuple[str | None, float]:
    """What wait_for_notification returned while `payloads` were sent as soon as it listened, and how many seconds
    after the first notification reached this process it returned (`working` listens too, as a witness)."""
    arrived, ended, errors = [], [], []

    def witness(*notification) -> None:
        arrived.append(time.perf_counter())

    loop = asyncio.get_running_loop()
    usual = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: errors.append(context))  # what a callback of yours raises
    await working.add_listener(CHANNEL, witness)
    try:
        waiting = asyncio.ensure_future(wait_for_notification(listening, CHANNEL, timeout))
        waiting.add_done_callback(lambda task: ended.append(time.perf_counter()))
        await until_listening(working, listening, waiting)
        await notify_until_heard(working, waiting, *payloads, seconds=timeout)
        payload = await within(1, waiting)  # a call that heard nothing in `timeout` has returned None by now
        await asyncio.sleep(0)  # the callbacks of notifications that came with the first have run
    finally:
        await working.remove_listener(CHANNEL, witness)
        loop.set_exception_handler(usual)
    assert not errors, (
        f"while {len(payloads)} notification(s) came in one commit, a callback raised "
        f"{errors[0].get('exception', errors[0].get('message'))!r} (asyncpg calls it for every notification, the "
        "first and the ones after it): handle each one, or ignore those that come after the first"
    )
    return payload, ended[0] - arrived[0] if arrived else 0.0


async def test_returns_the_first_payload_as_soon_as_it_arrives(db_pool):
    """The payload of the first notification on the channel comes back, and at once: not at the end of the
    timeout, nor at the next step of a poll. Any payload: Unicode, or empty."""
    async with another_connection() as listening, db_pool.acquire() as working:
        for payloads in [("jöb 7 ✓", "job 8"), ("",)]:
            payload, late = await heard(listening, working, *payloads)
            assert payload == payloads[0], f"notified {list(payloads)}, wait_for_notification returned {payload!r}"
            _, round_trip = await timed(listening.execute("SELECT 1"))  # what stopping to listen costs, about
            assert late < 0.2 + 2 * round_trip, (
                f"wait_for_notification returned {late:.2f} s after the notification reached this process: return "
                "as soon as one arrives (a callback that wakes the waiting call, not a sleep between looks)"
            )
            await still_listening(listening, "after returning a payload")


@pytest.fixture
async def connections(db_pool):
    """`listening` (a connection of its own, so no other code listens on it) and `working`, which notifies."""
    async with another_connection() as listening, db_pool.acquire() as working:
        yield listening, working


@examples(10)
@example(payload=" job 7\n")
@example(payload="first line\nsecond line")
@example(payload="e\u0301 \t")  # an e and a combining accent: not the one character é
@given(payload=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30))
async def test_returns_any_payload_exactly(connections, payload):
    """Any payload comes back exactly as it was sent: spaces and newlines around or inside it, Unicode, empty."""
    listening, working = connections
    got, late = await heard(listening, working, payload)
    assert got == payload, (
        f"notified {payload!r}, wait_for_notification returned {got!r}: return the payload exactly as it came"
    )
    assert late < 0.3, (  # looser than the bound above: here only so that a late answer fails at once, not per example
        f"wait_for_notification returned {late:.2f} s after the notification reached this process: return as soon as "
        "one arrives (a callback that wakes the waiting call, not a sleep between looks)"
    )
    await still_listening(listening, "after returning a payload")


async def test_returns_none_after_the_timeout():
    """With nothing sent, it returns None once the timeout has passed: not before, and not much later (a short
    timeout too, and 0: no wait at all), and it leaves no task of its own running."""
    async with another_connection() as listening:
        for timeout in (0.2, 0.05, 0):  # 0: look, and do not wait
            before, started = asyncio.all_tasks(), time.perf_counter()
            payload = await within(timeout + 1, wait_for_notification(listening, CHANNEL, timeout))
            seconds = time.perf_counter() - started
            assert payload is None, f"nothing was sent, and wait_for_notification returned {payload!r}"
            await no_task_left(before, "after the timeout")
            _, round_trip = await timed(listening.execute("SELECT 1"))  # LISTEN and UNLISTEN cost one each, about
            assert 0.95 * timeout <= seconds < timeout + 0.2 + 2 * round_trip, (
                f"with a timeout of {timeout} s, wait_for_notification returned after {seconds:.2f} s"
            )
            await still_listening(listening, "after the timeout")


async def test_stops_listening_when_cancelled(db_pool):
    """If the caller cancels the call while it waits, it ends cancelled (the caller's time limit works), stops
    listening, and leaves no task running."""
    async with another_connection() as listening, db_pool.acquire() as observer:
        before = asyncio.all_tasks()
        waiting = asyncio.ensure_future(wait_for_notification(listening, CHANNEL, 10))
        await until_listening(observer, listening, waiting, seconds=5)  # the connection is busy until then
        waiting.cancel()
        await asyncio.wait({waiting}, timeout=5)
        assert waiting.done(), "wait_for_notification was cancelled, and still had not ended 5 s later"
        if not waiting.cancelled():
            how = repr(waiting.exception()) if waiting.exception() else f"it returned {waiting.result()!r}"
            pytest.fail(
                f"wait_for_notification was cancelled, and ended as if it had not been ({how}): let "
                "asyncio.CancelledError through, the caller's own time limit relies on it",
                pytrace=False,
            )
        await still_listening(listening, "after its task was cancelled")
        await no_task_left(before, "after it was cancelled")


async def test_a_second_call_starts_afresh(db_pool):
    """Calls on one connection are independent: the second hears its own notification, not a leftover of the first."""
    async with another_connection() as listening, db_pool.acquire() as working:
        payload, _ = await heard(listening, working, "first", "second")
        assert payload == "first", f"notified ['first', 'second'], wait_for_notification returned {payload!r}"
        leftover = await within(1.5, wait_for_notification(listening, CHANNEL, 0.1))
        assert leftover is None, f"a second call, with nothing sent, returned {leftover!r}: a leftover of the first"
        payload, _ = await heard(listening, working, "third")
        assert payload == "third", f"a third call on the same connection returned {payload!r} instead of 'third'"
        await still_listening(listening, "after three calls")


async def test_leaves_other_listeners_alone(db_pool):
    """Another listener on the same connection and channel (the app's own) still hears every notification after a
    call: stop listening for yourself, not for the whole connection."""
    async with another_connection() as listening, db_pool.acquire() as working:
        for_the_app = asyncio.Queue()

        def app_listener(*notification) -> None:
            for_the_app.put_nowait(notification[-1])

        await listening.add_listener(CHANNEL, app_listener)
        try:
            call = asyncio.ensure_future(wait_for_notification(listening, CHANNEL, 0.05))
            if not (await asyncio.wait({call}, timeout=2))[0]:
                call.cancel()
                pytest.fail("wait_for_notification(…, 0.05) had not returned 2 s later", pytrace=False)
            channels = await listening.fetchval(LISTENING)  # not listening: the app can hear nothing, say so now
            assert channels == [CHANNEL], (
                "after one call of wait_for_notification, the app's own listener on the same connection and channel "
                f"can hear nothing: the connection listens on {channels}. Remove your listener only "
                "(remove_listener), never UNLISTEN the channel"
            )
            await working.execute(NOTIFY, CHANNEL, "for the app")
            app_heard = asyncio.ensure_future(for_the_app.get())
            done, _ = await asyncio.wait({app_heard}, timeout=2)
            app_heard.cancel()
            assert done, (
                "after one call of wait_for_notification, the app's own listener on the same connection and channel "
                "heard nothing within 2 s: remove your listener only (remove_listener), never UNLISTEN the channel"
            )
        finally:
            await listening.remove_listener(CHANNEL, app_listener)


# %% [markdown] tags=["hint"] exercise="10.1"
# <details><summary>Hint 1</summary>
#
# `add_listener` calls your callback whenever a notification comes; your function needs to *wait* for the first
# one, with a limit, and clean up afterwards whatever happened. Which asyncio tools wait with a limit?
# </details>
#
# <details><summary>Hint 2</summary>
#
# A callback that puts each payload into an `asyncio.Queue` made inside the call; `await asyncio.wait_for(queue.get(),
# timeout)` (its `TimeoutError` means None) and return the payload untouched; `remove_listener` with that same
# callback in a `finally`.
# </details>


# %% [markdown]
# ## Exercise 10.2: prove that a notification is sent only on commit
#
# `place_order_announced(conn, user_id, total)` places an order and announces it on channel `orders` with the
# order id as payload, in one transaction (a savepoint inside the caller's):


# %%
async def place_order_announced(conn: asyncpg.Connection, user_id: int, total: str) -> int:
    async with conn.transaction():
        order_id = await shop.place_order(conn, user_id, total)
        await conn.execute("SELECT pg_notify('orders', $1)", str(order_id))
    return order_id


# %% [markdown]
# Write the test: `check_announced_only_on_commit(listening, working, place, user_id, wait)` gets two connections,
# a function shaped like `place_order_announced`, the id of a committed user, and `wait`: how many seconds to wait
# for a notification (it may not come). Listen on `orders` on `listening`. Then on `working`: call `place` **in a
# transaction that commits**, and show that exactly the new order's id arrives (its text, nothing around it); call
# it **in a transaction that rolls back**, and show that nothing arrives within `wait` seconds (an announcement may
# come late). Wait no longer than `wait` for any notification (the checker passes a short one too), and stop
# listening and end your transactions at the end, whatever happens.
# The checker runs your test against the real function (it must pass) and against broken ones (it must fail,
# whichever way: an `assert`, `pytest.fail`, `pytest.raises`, an error).


# %% tags=["exercise"] exercise="10.2"
# Exercise 10.2: prove that a notification is sent only on commit
async def check_announced_only_on_commit(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    raise NotImplementedError(
        "Exercise 10.2: pass for the real place_order_announced, fail for any version that breaks its promise"
    )


# %% tags=["solution"] exercise="10.2"
async def check_announced_only_on_commit(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        assert await asyncio.wait_for(payloads.get(), wait) == str(order_id)

        rolled_back = working.transaction()
        await rolled_back.start()
        try:
            await place(working, user_id, "20.00")
        finally:
            await rolled_back.rollback()  # also when place raises: leave no transaction open
        try:
            payload = await asyncio.wait_for(payloads.get(), wait)
        except asyncio.TimeoutError:
            payload = None
        assert payload is None, f"a rolled-back order was announced: {payload}"
    finally:
        await listening.remove_listener("orders", on_notification)


# %% tags=["checker", "raises-exception"] exercise="10.2"
# %%ipytest --exercise 10.2
from coursedb.checks import outcome, timed

WAIT = 0.5  # seconds: what the checker passes as `wait`
SHORT = 0.05  # a shorter `wait`, for a function that never announces: nothing can come late
LATE = 0.6  # an outbox announces this share of `wait` after the order was placed: late, yet within `wait`
AT_ONCE = 0.25  # the `wait` for broken versions whose wrong announcement goes out before the rollback ends


async def announce_and_commit(conn: asyncpg.Connection, user_id: int, total: str) -> int:
    """Commits the caller's transaction itself, so the announcement goes out even when the caller then rolls back."""
    order_id = await shop.place_order(conn, user_id, total)
    await conn.execute("SELECT pg_notify('orders', $1)", str(order_id))
    await conn.execute("COMMIT")
    await conn.execute("BEGIN")
    return order_id


async def announce_nothing(conn: asyncpg.Connection, user_id: int, total: str) -> int:
    """Places the order and never announces it."""
    return await shop.place_order(conn, user_id, total)


async def announce_the_total(conn: asyncpg.Connection, user_id: int, total: str) -> int:
    """Announces the order's total instead of its id."""
    async with conn.transaction():
        order_id = await shop.place_order(conn, user_id, total)
        await conn.execute("SELECT pg_notify('orders', $1)", total)
    return order_id


async def announce_the_user(conn: asyncpg.Connection, user_id: int, total: str) -> int:
    """Announces the buyer's id instead of the order's."""
    async with conn.transaction():
        order_id = await shop.place_order(conn, user_id, total)
        await conn.execute("SELECT pg_notify('orders', $1)", str(user_id))
    return order_id


async def announce_a_sentence(conn: asyncpg.Connection, user_id: int, total: str) -> int:
    """Announces a sentence that contains the order's id ('order 1000001 placed'), not the id alone."""
    async with conn.transaction():
        order_id = await shop.place_order(conn, user_id, total)
        await conn.execute("SELECT pg_notify('orders', $1)", f"order {order_id} placed")
    return order_id


async def announce_total_then_id(conn: asyncpg.Connection, user_id: int, total: str) -> int:
    """Announces the total first, then the id: two announcements for one order, the first one wrong."""
    async with conn.transaction():
        order_id = await shop.place_order(conn, user_id, total)
        await conn.execute("SELECT pg_notify('orders', $1)", total)
        await conn.execute("SELECT pg_notify('orders', $1)", str(order_id))
    return order_id


async def announce_with_a_newline(conn: asyncpg.Connection, user_id: int, total: str) -> int:
    """Announces the id with a trailing newline ('1000001\\n'): consumers comparing the payload with the id never
    match it."""
    async with conn.transaction():
        order_id = await shop.place_order(conn, user_id, total)
        await conn.execute("SELECT pg_notify('orders', $1)", f"{order_id}\n")
    return order_id


async def announce_zero_padded(conn: asyncpg.Connection, user_id: int, total: str) -> int:
    """Announces the id zero-padded to ten digits ('0001000001'): the same number, not the same text."""
    async with conn.transaction():
        order_id = await shop.place_order(conn, user_id, total)
        await conn.execute("SELECT pg_notify('orders', $1)", f"{order_id:010d}")
    return order_id


class AnnounceFromAnOutbox:
    """An outbox task announces the id from a connection of its own LATE × `wait` seconds after the order was
    placed, whatever happens to the caller's transaction: a rolled-back order is announced too, a moment later."""

    __name__ = "announce_from_an_outbox"

    def __init__(self, outbox: asyncpg.Connection, wait: float) -> None:
        self.outbox, self.wait, self.sent, self.one_at_a_time = outbox, wait, [], asyncio.Lock()

    async def __call__(self, conn: asyncpg.Connection, user_id: int, total: str) -> int:
        order_id = await shop.place_order(conn, user_id, total)
        self.sent.append(asyncio.ensure_future(self.announce(order_id)))
        return order_id

    async def announce(self, order_id: int) -> None:
        await asyncio.sleep(LATE * self.wait)
        async with self.one_at_a_time:
            await self.outbox.execute("SELECT pg_notify('orders', $1)", str(order_id))

    async def settle(self) -> None:
        """Every announcement sent: none reaches the next check."""
        await asyncio.gather(*self.sent, return_exceptions=True)


class FailsTheSecondTime:
    """Announces the first order properly, then raises on its second call (a lost connection, say)."""

    __name__ = "place_fails_the_second_time"

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, conn: asyncpg.Connection, user_id: int, total: str) -> int:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("place failed")
        return await place_order_announced(conn, user_id, total)


@pytest.fixture
async def buyer(db_committed) -> int:
    """A committed user whose id is far from the orders' ids, and both far from 1."""
    async with db_committed.acquire() as conn:
        await conn.execute("SELECT setval('orders_id_seq', 1000000)")  # db_committed starts the next test at 1
        return await conn.fetchval(
            "INSERT INTO users (id, email, name) VALUES (2000000000, 'ada@example.com', 'Ada') RETURNING id"
        )


async def run_the_check(pool: asyncpg.Pool, place, user_id: int, wait: float = WAIT, listening=None):
    """How check_announced_only_on_commit ended for `place` (passed, failed any way a test fails, a hang of 10 s
    included, or skipped), the seconds it spent outside `place` (waiting), and what it left behind: whatever
    happened, the test must have stopped listening and ended its transactions."""
    in_place = 0.0

    async def timed_place(*args):
        nonlocal in_place
        order_id, seconds = await timed(place(*args))
        in_place += seconds
        return order_id

    async with contextlib.AsyncExitStack() as stack:
        if listening is None:
            listening = await stack.enter_async_context(another_connection())
        working = await stack.enter_async_context(pool.acquire())
        ended, seconds = await timed(
            outcome(check_announced_only_on_commit, listening, working, timed_place, user_id, wait, seconds=10)
        )
        left = []
        channels = await listening.fetchval("SELECT coalesce(array_agg(c), '{}') FROM pg_listening_channels() c")
        if channels:
            left.append(f"your test left `listening` listening on {channels} (against {place.__name__}): stop "
                        "listening whatever happens")  # fmt: skip
        if place is not announce_and_commit and working.is_in_transaction():  # which leaves one open itself
            left.append(f"your test left `working` inside a transaction (against {place.__name__}): end each one it "
                        "starts, also when `place` raises")  # fmt: skip
    return ended, seconds - in_place, left


def nothing_left(left: list[str]) -> None:
    if left:
        pytest.fail("; ".join(left), pytrace=False)


def no_longer_than(waited: float, wait: float) -> None:
    assert waited < 2 * wait + 0.2, (
        f"with wait={wait}, check_announced_only_on_commit waited {waited:.2f} s (its time outside `place`): wait at "
        "most `wait` for each notification"
    )


async def test_passes_for_the_real_function(db_committed, buyer):
    """Against place_order_announced, the test passes, waiting no more than `wait` for each notification."""
    ended, waited, left = await run_the_check(db_committed, place_order_announced, buyer)
    nothing_left(left)
    if not ended.passed:
        what = "failed" if ended.failed else "did not pass"
        pytest.fail(f"check_announced_only_on_commit {what} for the real function: {ended}", pytrace=False)
    no_longer_than(waited, WAIT)


async def test_gives_up_after_wait(db_committed, buyer):
    """Against a function that never announces, the test fails once `wait` has passed, however short `wait` is."""
    ended, waited, left = await run_the_check(db_committed, announce_nothing, buyer, wait=SHORT)
    nothing_left(left)
    if not ended.failed:
        pytest.fail(
            f"check_announced_only_on_commit did not fail for announce_nothing, which never announces: it {ended}",
            pytrace=False,
        )
    no_longer_than(waited, SHORT)


async def test_fails_for_every_broken_function(db_committed, buyer):
    """Against each broken version of place_order_announced (an announcement that escapes a rollback, at once or a
    moment later from an outbox; a payload that is not exactly the order's id, whitespace and padding included; one
    more announcement; a place that raises), the test fails, one way or another, and leaves nothing behind."""
    escaped, left = [], []
    async with another_connection() as outbox, contextlib.AsyncExitStack() as stack:
        listening = await stack.enter_async_context(another_connection())  # one for every run: connecting costs
        for broken in [
            announce_and_commit,
            announce_the_total,
            announce_the_user,
            announce_a_sentence,
            announce_total_then_id,
            announce_with_a_newline,
            announce_zero_padded,
            FailsTheSecondTime(),
            AnnounceFromAnOutbox(outbox, WAIT),
        ]:
            try:
                wait = WAIT if isinstance(broken, AnnounceFromAnOutbox) else AT_ONCE
                ended, _, leftovers = await run_the_check(db_committed, broken, buyer, wait, listening=listening)
            finally:
                if isinstance(broken, AnnounceFromAnOutbox):
                    await broken.settle()
            if leftovers:  # `listening` may still listen: the next run gets a fresh one
                left += leftovers
                listening = await stack.enter_async_context(another_connection())
            if not ended.failed:
                how = " ".join(broken.__doc__.split()).rstrip(".")
                what = "passed" if ended.passed else f"did not fail (it {ended})"
                escaped.append(f"check_announced_only_on_commit {what} for {broken.__name__}, which is broken: {how}")
    nothing_left(escaped + left)  # the escapes first: they say how the test missed a broken function


# %% [markdown] tags=["hint"] exercise="10.2"
# <details><summary>Hint 1</summary>
#
# Your test must notice three ways to break the promise: no announcement on commit, a payload that is not exactly the
# id's text (spaces, a newline or zeros in front count), and an announcement that escapes a rollback, maybe a moment
# later. Exercise 10.1's listener and bounded wait are the tools, with `wait` as the bound.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Add a listener that fills a queue; `async with working.transaction(): order_id = await place(...)`, then the
# first payload must equal `str(order_id)` (compare the text as it came); start a second transaction by hand,
# `place(...)`, roll it back in a `finally`, and `asyncio.wait_for(queue.get(), wait)` (the whole `wait`) must time
# out. Remove the listener in a `finally`.
# </details>

# %% [markdown]
# ## Key points
#
# - `NOTIFY` is delivered on `COMMIT` and dropped on rollback: under `db_conn` nothing ever arrives. Test
#   notifications with committed work (`db_committed`), a listener on another connection, and a bounded wait.
# - `command_timeout`, `statement_timeout` and `asyncio.wait_for` all stop the query on the server and leave
#   the connection usable; inside a transaction they all abort it. Don't carry on in an aborted transaction.
# - Cancelling a task mid-query cancels the query on the server too; the connection stays usable.
# - asyncpg caches prepared statements per connection. After a schema change a cached statement fails inside
#   a transaction (`InvalidCachedStatementError`); `pool.expire_connections()` clears the caches.
#   `statement_cache_size=0` for PgBouncer in transaction mode.
# - Bulk test data: `copy_records_to_table`, not thousands of `INSERT`s.
# - Hypothesis runs a test body many times per fixture: give each example a savepoint and roll it back, then
#   suppress `function_scoped_fixture` knowingly; `deadline=None`, `database=None`.


# %% [markdown]
# ## Where you stand
#
# Your checker runs in this notebook, as recorded (never your code); `show()` without a number, or
# `python3 course.py progress`, shows the whole course.

# %% tags=["progress"]
from coursedb.progress import show

show("10")
