# %% [markdown]
# # 02 · Connection pools
#
# **You will learn**
# - what `min_size` and `max_size` mean, and what `acquire()` and release do;
# - how to show that 20 concurrent requests share at most `max_size` connections;
# - how to make pool exhaustion fail fast with a timeout instead of hanging;
# - how to check that connections come back after errors, with a check that can actually fail;
# - what `init=`, `setup=` and the reset on release do, and what the reset leaves behind;
# - how `close()` and `terminate()` differ.
#
# *About 50 minutes.*

# %%
from coursedb.notebook import setup

db_url = setup()

# %% [markdown]
# ## The idea
#
# Opening a PostgreSQL connection costs a network round trip, authentication and a new server process.
# A **pool** opens a few connections and lends them out: `acquire()` borrows one, leaving the
# `async with` block gives it back. Two numbers shape a pool:
#
# | setting | meaning |
# |---|---|
# | `min_size` | connections opened when the pool starts, and kept open while idle |
# | `max_size` | the most connections the pool will ever open; the next `acquire()` waits for a free one |

# %%
import asyncio

import asyncpg

pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)


def in_use(pool) -> int:
    """Connections currently lent out."""
    return pool.get_size() - pool.get_idle_size()


print(f"open: {pool.get_size()}, idle: {pool.get_idle_size()}, in use: {in_use(pool)}")

# %%
async with pool.acquire() as conn:
    print("inside the block, in use:", in_use(pool))
print("after the block, in use:", in_use(pool))

# %% [markdown]
# ## 20 concurrent requests, at most 2 connections
#
# Each "request" borrows a connection, does a little work (`pg_sleep`) and reports which server
# process served it: `pg_backend_pid()` is different for every connection.


# %%
async def handle_request(pool) -> int:
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_sleep(0.02)")
        return await conn.fetchval("SELECT pg_backend_pid()")


pids = await asyncio.gather(*(handle_request(pool) for _ in range(20)))
print(f"requests served: {len(pids)}, distinct connections: {len(set(pids))}, pool size now: {pool.get_size()}")

# %% [markdown]
# The pool grew from 1 to its maximum of 2 and the other 18 requests waited their turn.
#
# Every open connection is a process on the server, and a pool keeps what it opened until it is closed.
# In a workshop the whole room shares one server (PostgreSQL allows 100 connections by default), so this
# course keeps every learner within 4 connections at any moment, and closes a pool when it is done with it:

# %%
await pool.close()
print("open after close():", pool.get_size())

# %% [markdown]
# As a test, with the course's `db_pool` fixture (`max_size=2`). The last assertion checks both bounds:
# more than one connection (the requests really ran concurrently, not one by one) and no more than `max_size`.

# %%
# %%ipytest


async def test_20_requests_share_at_most_max_size_connections(db_pool):
    pids = await asyncio.gather(*(handle_request(db_pool) for _ in range(20)))
    assert len(pids) == 20
    assert 1 < len(set(pids)) <= db_pool.get_max_size()


# %% [markdown]
# ## Pitfall: a request that needs two connections
#
# When every connection is lent out, `acquire()` waits. By default it waits **forever**. That turns
# one common pattern into a deadlock: a function that holds a connection and calls a helper that
# acquires another one from the same pool.


# %%
async def write_audit_log(pool, message):
    async with pool.acquire() as conn:  # a second connection...
        await conn.execute("SELECT $1::text", message)


async def transfer(pool):
    async with pool.acquire() as conn, conn.transaction():  # ...while this one is still held
        await conn.execute("SELECT 'move the money'")
        await write_audit_log(pool, "transfer done")


# %% [markdown]
# With a free connection to spare, this works:

# %%
async with asyncpg.create_pool(db_url, min_size=1, max_size=2) as pool_of_two:
    await transfer(pool_of_two)
    print("transfer done, connections in use:", in_use(pool_of_two))

# %% [markdown]
# Now give it a pool with one connection (in production: `max_size` transfers at the same time).
# `transfer` holds the only connection and the helper waits for it forever. Never let a test wait forever: wrap the call in `asyncio.wait_for`, and the hang becomes an error.

# %%
pool_of_one = await asyncpg.create_pool(db_url, min_size=1, max_size=1)

# %% tags=["raises-exception"]
await asyncio.wait_for(transfer(pool_of_one), timeout=0.5)  # without wait_for: hangs forever

# %% [markdown]
# A `TimeoutError` after half a second instead of a frozen test run. Cancelling `transfer` also released
# its connection, so the pool is usable again:

# %%
in_use(pool_of_one)

# %% [markdown]
# In application code, `pool.acquire(timeout=...)` gives the same protection per call. Tests can
# show that exhaustion is **detected**: hold every connection, then ask for one more. (The fix for
# `transfer` itself is to pass its connection to the helper instead of acquiring a second one.)

# %%
# %%ipytest
import pytest


@pytest.fixture
async def tiny_pool(db_url):
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    yield pool
    await asyncio.wait_for(pool.close(), timeout=5)  # a leak fails the teardown instead of hanging it


async def test_exhausted_pool_times_out_instead_of_hanging(tiny_pool):
    async with tiny_pool.acquire():
        with pytest.raises(asyncio.TimeoutError):  # the same class as TimeoutError since Python 3.11
            await tiny_pool.acquire(timeout=0.1)
    assert in_use(tiny_pool) == 0


# %% [markdown]
# Why a fixture and not `pool_of_one`? A `%%ipytest` cell runs its async tests on an event loop of its own,
# and an asyncpg pool belongs to the loop that created it. Tests get their pools from fixtures.
#
# ## Do connections come back after an error?
#
# A connection that is borrowed and never returned is a **leak**: after `max_size` leaks every request waits.
# Here is code that leaks on errors, because its `release()` is skipped when the query raises:


# %%
async def leaky_find_email(pool, user_id):
    conn = await pool.acquire()
    email = await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    await pool.release(conn)  # never reached when the query raises
    return email


# %% [markdown]
# A popular check compares the number of **idle** connections before and after. Idle counts also move
# when the pool opens or closes connections, so that check can pass while a connection leaks. A pool
# with `min_size=0` (a common setting) shows it plainly: it starts with 0 idle connections, and
# "at least 0 idle" is always true. Compare the number **in use** instead:

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


@pytest.fixture
async def lazy_pool(db_url):
    pool = await asyncpg.create_pool(db_url, min_size=0, max_size=5)
    yield pool
    pool.terminate()  # close() would wait forever for a leaked connection


async def test_idle_count_check_misses_the_leak(lazy_pool):
    idle_before = lazy_pool.get_idle_size()
    with pytest.raises(asyncpg.DataError):
        await leaky_find_email(lazy_pool, "42")  # a str for an integer: the query raises
    assert lazy_pool.get_idle_size() >= idle_before


async def test_in_use_count_check_catches_the_leak(lazy_pool):
    in_use_before = in_use(lazy_pool)
    with pytest.raises(asyncpg.DataError):
        await leaky_find_email(lazy_pool, "42")
    assert in_use(lazy_pool) == in_use_before


# %% [markdown]
# The idle check passed (`.`) even though a connection leaked; the in-use check failed (`F`): `1 == 0`.
# A test is only worth having if it can fail when the code is wrong.

# %% [markdown]
# ## Exercise 2.1: look up an email without leaking (warm-up)
#
# Write `find_email(pool, user_id)`: the email of the user with that id, or `None` if there is none.
# Any error must reach the caller, and the connection must go back to the pool in every case.


# %% tags=["exercise"] exercise="2.1"
# Exercise 2.1: look up an email without leaking
async def find_email(pool, user_id):
    raise NotImplementedError("Exercise 2.1: borrow a connection, query, and make sure it goes back in every case")


# %% tags=["solution"] exercise="2.1"
async def find_email(pool, user_id):
    async with pool.acquire() as conn:  # released on return and on any exception
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)


# %% tags=["checker", "raises-exception"] exercise="2.1"
# %%ipytest --exercise 2.1
import asyncio

import asyncpg
import pytest


@pytest.fixture
async def lending_pool(db_url):
    pool = await asyncpg.create_pool(db_url, min_size=0, max_size=2)
    yield pool
    pool.terminate()  # close() would wait forever for a connection find_email never gave back
    conn = await asyncpg.connect(db_url)
    try:  # the users the tests committed
        await conn.execute("DELETE FROM users WHERE email ILIKE '%@lending.example.com%'")
    finally:
        await conn.close()


async def committed_user(pool, user_id: int, email: str) -> None:
    async with pool.acquire() as conn:  # committed, so that find_email's own connection sees it
        await conn.execute("INSERT INTO users (id, email, name) VALUES ($1, $2, 'Ada')", user_id, email)


WAITING_FOR_USERS = "SELECT count(*) > 0 FROM pg_locks WHERE relation = 'users'::regclass AND NOT granted"


def nothing_lent(pool, after: str) -> None:
    assert in_use(pool) == 0, f"{after}, a connection is still lent out: give it back in every case"


# Emails as the column holds them: any case, any Unicode, spaces and a line break kept.
STORED = {2_000_000_000: "Zoë@Lending.Example.COM", -5: " ÉMILE@lending.example.com\n", 1: "zoë@lending.example.com"}


async def test_finds_a_committed_user(lending_pool):
    """The email of the user with that id exactly as stored (its case, spaces and all), and the connection back in
    the pool afterwards."""
    for user_id, stored in STORED.items():
        await committed_user(lending_pool, user_id, stored)
    for user_id, stored in STORED.items():
        email = await find_email(lending_pool, user_id)
        assert email == stored, (
            f"find_email returned {email!r} for user {user_id}, whose email is {stored!r}: as stored"
        )
        nothing_lent(lending_pool, "after find_email returned an email")


async def test_no_such_user_gives_none(lending_pool):
    """An id no user has gives None, and the connection goes back then too."""
    await committed_user(lending_pool, 7, "seven@lending.example.com")
    email = await find_email(lending_pool, 8)
    assert email is None, f"there is no user with the id 8, yet find_email returned {email!r}: expected None"
    nothing_lent(lending_pool, "after find_email found no user")


async def test_errors_reach_the_caller_and_the_connection_comes_back(lending_pool):
    """A failing query raises to the caller, and its connection still goes back to the pool."""
    try:
        await find_email(lending_pool, "42")
    except asyncpg.DataError:
        pass
    else:
        hint = "find_email(pool, '42') must raise asyncpg.DataError (a str for an integer id), but it raised nothing"
        pytest.fail(hint + ": let errors reach the caller", pytrace=False)
    assert in_use(lending_pool) == 0, "after the query raised, the connection was not given back to the pool"


async def test_the_connection_goes_back_open(lending_pool):
    """find_email gives back the very connection it borrowed, still open: the next borrower gets it again."""
    servers = []
    for user_id in (5, "x", 6):  # found nothing, failed, found nothing: each call leaves the pool's one connection
        try:
            await find_email(lending_pool, user_id)
        except asyncpg.DataError:
            pass
        nothing_lent(lending_pool, f"after find_email(pool, {user_id!r})")
        async with lending_pool.acquire() as conn:
            servers.append(conn.get_server_pid())
    assert len(set(servers)) == 1, (
        "after each call to find_email the pool had to open a new connection for the next borrower: find_email "
        "closed the connection it borrowed instead of giving it back (each new connection is a new server process)"
    )


async def test_a_cancelled_call_gives_the_connection_back(lending_pool, db_url):
    """A call cancelled while its query waits (a request's timeout) still gives its connection back."""
    locker = await asyncpg.connect(db_url)
    try:
        async with locker.transaction():  # users locked: find_email's query waits until the transaction ends
            await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            call = asyncio.create_task(find_email(lending_pool, 1))
            for _ in range(500):  # until the server shows the query waiting for the lock (at most 5 s)
                if call.done() or await locker.fetchval(WAITING_FOR_USERS):
                    break
                await asyncio.sleep(0.01)
            if call.done():
                pytest.fail(f"find_email(pool, 1) ended before its query ran: {call.exception()!r}", pytrace=False)
            call.cancel()
            await asyncio.wait({call})
    finally:
        await locker.close()
    if not call.cancelled():
        hint = "find_email did not end with CancelledError when it was cancelled: let the cancellation through"
        pytest.fail(f"{hint} (it ended with {call.exception() or call.result()!r})", pytrace=False)
    nothing_lent(lending_pool, "after find_email was cancelled")


async def test_a_closed_pool_is_no_missing_user(lending_pool):
    """On a closed pool (a request during shutdown) find_email raises: the caller hears why, not 'no such user'."""
    await lending_pool.close()
    try:
        result = await find_email(lending_pool, 1)
    except Exception:  # whichever error the closed pool raises, it reached the caller
        return
    hint = f"on a closed pool find_email returned {result!r}: it looked nobody up, so the caller must hear why"
    pytest.fail(hint + " (asyncpg raises InterfaceError: pool is closed): let the error through", pytrace=False)


BUSY = 1.2  # seconds every connection stays lent out: longer than a one-second limit inside the answer


async def test_a_call_waiting_for_a_connection(lending_pool):
    """While every connection is lent out, a call waits and then finds the user (waiting is no missing user), and a
    call cancelled while it waits (a request's own time limit) ends cancelled, holding no connection."""
    await committed_user(lending_pool, 77, "patient@lending.example.com")
    held = [await lending_pool.acquire() for _ in range(2)]  # the pool's two connections: every later call waits
    try:
        waiting = asyncio.create_task(find_email(lending_pool, 77))
        cancelled = asyncio.create_task(find_email(lending_pool, 77))
        await asyncio.sleep(0.1)  # both are waiting for a connection now
        cancelled.cancel()
        await asyncio.wait({cancelled}, timeout=2)
        await asyncio.wait({waiting}, timeout=BUSY)  # then one connection comes back
    finally:
        for conn in held:
            await lending_pool.release(conn)
    await asyncio.wait({waiting}, timeout=5)
    for task in (cancelled, waiting):  # read how each ended, so asyncio does not warn of an unread error
        if task.done() and not task.cancelled():
            task.exception()
    if not cancelled.cancelled():
        hint = "find_email, cancelled while it waited for a connection, did not end with CancelledError"
        ended = cancelled.exception() if cancelled.done() else "nothing: it had not ended"
        pytest.fail(f"{hint} (it ended with {ended!r}): borrow outside the try that gives it back", pytrace=False)
    if not waiting.done():
        waiting.cancel()
        pytest.fail("find_email had not ended 5 s after a connection came back", pytrace=False)
    if isinstance(waiting.exception(), asyncio.TimeoutError):
        return  # a time limit of the answer's own, and it reached the caller: that is the caller's to handle
    email = waiting.result()
    assert email == "patient@lending.example.com", (
        f"find_email(pool, 77) returned {email!r} after waiting {BUSY} s for a connection, but user 77 exists: a busy "
        "pool is no missing user. Wait, or let a time limit's error reach the caller"
    )
    nothing_lent(lending_pool, "after calls that waited for a connection")


async def test_many_calls_at_once_share_the_pool(lending_pool):
    """Twenty concurrent calls, found or not found or failing, all end on a pool of two and leave nothing lent."""
    await committed_user(lending_pool, 31, "many@lending.example.com")
    calls = [find_email(lending_pool, user_id) for user_id in ([31, 32, "x"] * 7)[:20]]
    try:
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=5)
    except asyncio.TimeoutError:  # the same class as TimeoutError since Python 3.11
        pytest.fail("20 calls on a pool of 2 did not end within 5 s: connections are not given back", pytrace=False)
    assert results[:2] == ["many@lending.example.com", None], f"the first two calls returned {results[:2]}"
    nothing_lent(lending_pool, "after 20 calls")


# %% [markdown] tags=["hint"] exercise="2.1"
# <details><summary>Hint 1</summary>
#
# `leaky_find_email` above is almost right: what happens to its `release()` when the query raises?
# </details>
#
# <details><summary>Hint 2</summary>
#
# `async with pool.acquire() as conn:` gives the connection back when the block ends, normally or by an exception.
# Return the query's result from inside the block, and catch nothing.
# </details>


# %% [markdown]
# ## What a connection keeps between borrowers
#
# Before a released connection goes back to the pool, asyncpg **resets** it: it rolls back an open
# transaction and runs a reset query. This is the query on this server:

# %%
async with pool_of_one.acquire() as conn:
    print(conn.get_reset_query())

# %% [markdown]
# `RESET ALL` undoes session settings (`SET ...`), `UNLISTEN *` drops notification channels, and the
# advisory locks are released. What is **not** in that list survives. Let's leave some state behind on the
# only connection of `pool_of_one` and look at what the next borrower finds:

# %%
async with pool_of_one.acquire() as conn:
    first_pid = await conn.fetchval("SELECT pg_backend_pid()")
    await conn.execute("SET search_path TO pg_catalog")
    await conn.execute("SELECT pg_advisory_lock(42)")
    await conn.execute("LISTEN order_events")
    await conn.execute("CREATE TEMP TABLE scratch (note text)")
    await conn.execute("PREPARE leftover AS SELECT 1")

leftover_checks = {
    "SET search_path": "SELECT current_setting('search_path') = 'pg_catalog'",
    "advisory lock": "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    "LISTEN": "SELECT count(*) > 0 FROM pg_listening_channels()",
    "TEMP table": "SELECT to_regclass('pg_temp.scratch') IS NOT NULL",
    "PREPARE": "SELECT count(*) > 0 FROM pg_prepared_statements WHERE name = 'leftover'",
}
async with pool_of_one.acquire() as conn:
    same_connection = await conn.fetchval("SELECT pg_backend_pid()") == first_pid
    survived = {}
    for state, sql in leftover_checks.items():
        survived[state] = await conn.fetchval(sql)
    await conn.execute("DROP TABLE scratch; DEALLOCATE leftover")  # clean up what the reset left

print("same connection as before:", same_connection)
for state, still_there in survived.items():
    print(f"{state:<16} {'SURVIVED' if still_there else 'reset'}")

# %% [markdown]
# Temporary tables and prepared statements **survive** the reset: the next borrower of that connection
# sees them. A test that creates a temp table on a pooled connection should drop it (or create it inside
# a transaction with `ON COMMIT DROP`).

# %% [markdown]
# ## `init=`, `setup=` and `reset=`
#
# | hook | runs | use it for |
# |---|---|---|
# | `init=` | once, when the pool opens a new connection | things the reset does not undo: type codecs (the course's `coursedb.init_connection`) |
# | `setup=` | every `acquire()` | state that must hold for every borrower and that the reset undoes |
# | `reset=` | every release, instead of the reset query | custom cleanup, e.g. also `DISCARD TEMP` |
# | `server_settings=` | connection start-up | settings like `statement_timeout`: they become the connection's defaults |
#
# The reset makes one mistake easy: putting a `SET` in `init=`. It holds for the first borrower only:


# %%
async def set_timeout(conn):
    await conn.execute("SET statement_timeout = '2s'")


async def timeouts_seen(**pool_options):
    async with asyncpg.create_pool(db_url, min_size=1, max_size=1, **pool_options) as one:
        seen = []
        for _ in range(2):
            async with one.acquire() as conn:
                seen.append(await conn.fetchval("SHOW statement_timeout"))
        return seen


hooks = {
    "init=": {"init": set_timeout},
    "setup=": {"setup": set_timeout},
    "server_settings=": {"server_settings": {"statement_timeout": "2s"}},
}
for label, options in hooks.items():
    first, second = await timeouts_seen(**options)
    print(f"{label:<17} first borrower: {first:<3} second borrower: {second}")

# %% [markdown]
# `RESET ALL` returned the setting to the connection's default (`0`, no timeout). `server_settings=` changes
# that default itself, so it costs nothing per acquire; `setup=` works too, at one extra query per acquire.

# %% [markdown]
# ## Exercise 2.2: a pool whose queries can never run away (stretch)
#
# Write `create_guarded_pool(dsn)` returning a new pool (`min_size=1`, `max_size=2`) on which **every** borrower,
# not just the first, has `statement_timeout` set to `'500ms'` (and no other setting changed), whatever the borrower
# before it did to its session: the pool still cleans up after each borrower, as pools do.


# %% tags=["exercise"] exercise="2.2"
# Exercise 2.2: a pool whose queries can never run away
async def create_guarded_pool(dsn):
    raise NotImplementedError("Exercise 2.2: which of the hooks above gives every borrower the setting?")


# %% tags=["solution"] exercise="2.2"
async def create_guarded_pool(dsn):
    # server_settings become the connection's defaults, so RESET ALL on release keeps them.
    # (setup= with "SET statement_timeout = '500ms'" also works, at one extra query per acquire.)
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={"statement_timeout": "500ms"})


# %% tags=["checker", "raises-exception"] exercise="2.2"
# %%ipytest --exercise 2.2
import asyncio
import gc
import time
import warnings

import asyncpg
import pytest

# Settings an answer may change besides statement_timeout without changing what a borrower's queries do.
HARMLESS = {"statement_timeout", "application_name"}
SETTINGS = "SELECT name, setting FROM pg_settings ORDER BY name"
# The server's connections to this notebook's database, as the server lists them.
CONNECTED = (
    "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity"
    " WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


async def created(dsn: str) -> tuple[asyncpg.Pool, list[str]]:
    """The answer's pool, and what asyncpg warned about while making it (a connection left unclosed)."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", ResourceWarning)
        pool = await create_guarded_pool(dsn)
        gc.collect()  # a connection nobody holds any more is found now, not in a later test
    return pool, [str(w.message) for w in warned if issubclass(w.category, ResourceWarning)]


@pytest.fixture
async def guarded(db_url):
    pool, _ = await created(db_url)
    yield pool
    await pool.close()
    database_defaults = await asyncpg.connect(db_url)
    try:  # undo a default an answer may have changed for every connection
        database = await database_defaults.fetchval("SELECT current_database()")
        await database_defaults.execute(f'ALTER DATABASE "{database}" RESET statement_timeout')
        await database_defaults.execute("ALTER ROLE CURRENT_USER RESET statement_timeout")
    finally:
        await database_defaults.close()


async def both_connections(pool) -> list:
    """Both connections of the pool at once; with a bound, so a pool too small fails instead of waiting for ever."""
    held = []
    try:
        for _ in range(2):
            held.append(await pool.acquire(timeout=2))
    except asyncio.TimeoutError:
        for conn in held:
            await pool.release(conn)
        pytest.fail("the pool could not lend two connections at once within 2 s: max_size=2", pytrace=False)
    return held


async def test_the_pool_sizes(guarded):
    """The pool opens one connection at start and never more than two."""
    sizes = (guarded.get_min_size(), guarded.get_max_size())
    assert sizes == (1, 2), f"the pool has (min_size, max_size) = {sizes}: expected min_size=1 and max_size=2"


async def test_every_borrower_has_the_statement_timeout(guarded):
    """Every borrower of every connection, not only the first, has statement_timeout 500ms."""
    seen = []
    for _ in range(3):
        held = await both_connections(guarded)
        try:
            for conn in held:
                seen.append(await conn.fetchval("SHOW statement_timeout"))
        finally:
            for conn in held:
                await guarded.release(conn)
    if set(seen) == {"0"}:
        hint = "the server never got a statement_timeout (asyncpg's command_timeout is a client-side timer)"
        pytest.fail(hint, pytrace=False)
    assert seen == ["500ms"] * 6, (
        f"statement_timeout of six borrowers in turn: {seen}. A setting that holds for the first borrower only "
        "was undone by the reset on release"
    )


async def test_a_borrowers_own_changes_do_not_reach_the_next(guarded):
    """Whatever a borrower did to its session (its own statement_timeout, an advisory lock, a LISTEN) is gone for
    the next borrower, who has statement_timeout 500ms again."""
    held = await both_connections(guarded)
    try:
        for conn in held:  # a migration, say: no timeout for its long statements, and a lock so it runs alone
            await conn.execute("SET statement_timeout = 0; SELECT pg_advisory_lock_shared(2022); LISTEN migrations")
    finally:
        for conn in held:
            await guarded.release(conn)
    held = await both_connections(guarded)
    try:
        for conn in held:
            found = await conn.fetchrow(
                "SELECT current_setting('statement_timeout') AS timeout,"
                " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks,"
                " (SELECT count(*) FROM pg_listening_channels()) AS channels"
            )
            left = dict(found)
            assert left == {"timeout": "500ms", "locks": 0, "channels": 0}, (
                f"the borrower before it set statement_timeout = 0, took an advisory lock and ran LISTEN; the next "
                f"borrower found timeout {left['timeout']}, {left['locks']} advisory locks, {left['channels']} "
                "channels: the pool must still reset each connection on release, and the guard must survive that reset"
            )
    finally:
        for conn in held:
            await guarded.release(conn)


async def test_the_server_cancels_a_long_query_and_only_a_long_one(guarded):
    """The server cancels a query after about 500 ms, and lets a 300 ms query finish."""

    async def long_query(conn) -> float:
        start = time.monotonic()
        with pytest.raises(asyncpg.QueryCanceledError):
            await conn.execute("SELECT pg_sleep(5)")
        return time.monotonic() - start

    held = await both_connections(guarded)  # both at once: the short query runs while the long one waits
    try:
        short, long = await asyncio.gather(
            held[0].execute("SELECT pg_sleep(0.3)"), long_query(held[1]), return_exceptions=True
        )
    finally:
        for conn in held:
            await guarded.release(conn)
    if isinstance(short, asyncpg.QueryCanceledError):
        pytest.fail("the server cancelled a 300 ms query: the timeout must let it finish", pytrace=False)
    for outcome in (short, long):
        if isinstance(outcome, BaseException):
            raise outcome
    assert long < 3, f"the server took {long:.1f} s to cancel a query: the timeout is not 500ms"


async def test_the_timeout_belongs_to_the_pool_alone(db_url, guarded):
    """A connection opened outside the pool has no statement_timeout: the default of the database stays; and a
    borrower's session differs from it in statement_timeout alone (no other limit a borrower's work trips over)."""
    outsider = await asyncpg.connect(db_url)
    try:
        outside = await outsider.fetchval("SHOW statement_timeout")
        plain = dict(await outsider.fetch(SETTINGS))
    finally:
        await outsider.close()
    assert outside == "0", (
        f"a new connection outside the pool has statement_timeout {outside}: the answer changed the default "
        "for everyone using this database, not just for this pool"
    )
    async with guarded.acquire() as conn:
        borrowed = dict(await conn.fetch(SETTINGS))
    changed = {name: (plain.get(name), value) for name, value in borrowed.items() if plain.get(name) != value}
    extra = {name: change for name, change in changed.items() if name not in HARMLESS}
    assert not extra, (
        f"a borrower's session differs from a plain connection's in more than statement_timeout: {extra} "
        "(setting: (plain, borrower)). Set statement_timeout alone: any other limit stops work the exercise allows"
    )


async def test_each_call_makes_a_pool_of_its_own(db_url, guarded):
    """Two calls give two pools: closing one leaves the other working (nobody shares a pool another may close)."""
    second = await create_guarded_pool(db_url)
    try:
        assert second is not guarded, "two calls of create_guarded_pool returned the same pool: make one each time"
    finally:
        await second.close()
    try:
        await guarded.fetchval("SELECT 1")
    except asyncpg.InterfaceError as exc:
        pytest.fail(f"closing one pool broke the other ({exc}): the two calls share something", pytrace=False)


async def test_no_connection_is_left_behind(db_url):
    """create_guarded_pool leaves open only the pool's own connections, and closing the pool closes them all."""
    observer = await asyncpg.connect(db_url)
    try:
        before = set(await observer.fetchval(CONNECTED))
        pool, warned = await created(db_url)
        try:
            assert not warned, (
                f"create_guarded_pool left a connection open that nothing refers to any more ({warned[0][:120]}): "
                "close every connection you open, or open none besides the pool's"
            )
            extra = await connections_since(observer, before, pool.get_size())
            assert not extra, (
                f"create_guarded_pool left a connection open besides the pool's {pool.get_size()} (server processes "
                f"{sorted(extra)}): close every connection you open, or open none besides the pool's"
            )
        finally:
            await pool.close()
        extra = await connections_since(observer, before, 0)
        assert not extra, f"after pool.close() the server still had {len(extra)} of the answer's connections open"
    finally:
        await observer.close()


async def connections_since(observer, before: set[int], expected: int) -> set[int]:
    """Connections opened since ``before`` beyond ``expected``; a closed one can take a moment to leave the list."""
    for _ in range(100):  # at most about 2 s; a right answer gets there at once
        new = set(await observer.fetchval(CONNECTED)) - before
        if len(new) <= expected:
            return set()
        await asyncio.sleep(0.02)
    return new


# %% [markdown] tags=["hint"] exercise="2.2"
# <details><summary>Hint 1</summary>
#
# Look at the table printed above: which hook's setting did the second borrower still see?
# </details>
#
# <details><summary>Hint 2</summary>
#
# `asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={...})`: a setting given at connection start-up
# becomes the connection's default, and the reset on release goes back to exactly that default.
# </details>

# %% [markdown]
# Stuck? Open the hints under a checker one at a time. The model answers are not in this notebook: try first, then
# ask your instructor or compare with a classmate.

# %% [markdown]
# ## Closing a pool: `close()` waits, `terminate()` does not
#
# `close()` is polite: it waits until every borrowed connection is back, then closes them all.
# While something still holds a connection, `close()` does not finish:

# %%
await pool_of_one.close()  # done with it; this demo gets a fresh pool, so the cell can run again
polite = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
held = await polite.acquire()
closing = asyncio.create_task(polite.close())
await asyncio.sleep(0.2)
print("close() finished while a connection was out:", closing.done())
await polite.release(held)
await closing
print("close() finished after the release:", closing.done())

# %% [markdown]
# A leaked connection therefore makes `close()` wait forever, e.g. in a fixture's teardown. `terminate()`
# closes every connection at once, borrowed or not, and the borrower's next query fails:

# %%
doomed = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
held = await doomed.acquire()
doomed.terminate()
try:
    await held.fetchval("SELECT 1")
except asyncpg.InterfaceError as exc:
    print("InterfaceError:", exc)

# %% [markdown]
# Use `close()` in normal teardown (wrapped in `asyncio.wait_for` if a leak must not hang you) and `terminate()`
# when you know connections leaked, like the `lazy_pool` fixture above.

# %% [markdown]
# ## Key points
#
# - A pool opens `min_size` connections at start and never more than `max_size`; `async with pool.acquire()`
#   always gives the connection back.
# - `acquire()` waits forever by default. Bound waits (`acquire(timeout=...)`, `asyncio.wait_for`) so a
#   deadlock or exhaustion fails a test instead of hanging it.
# - Check for leaks by comparing connections **in use**, not idle ones.
# - The reset on release undoes `SET`, `LISTEN` and advisory locks, not temp tables or prepared statements.
# - Codecs go in `init=`; settings go in `server_settings=` (or `setup=`), never in `init=`.
# - `close()` waits for borrowed connections; `terminate()` does not.


# %% [markdown]
# ## Where you stand
#
# Your checker runs in this notebook, as recorded (never your code); `show()` without a number, or
# `python3 course.py progress`, shows the whole course.

# %% tags=["progress"]
from coursedb.progress import show

show("02")
