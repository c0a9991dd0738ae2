# %% [markdown]
# # 03 · Rollback isolation
#
# **You will learn**
# - how the `db_conn` fixture keeps tests apart with one transaction that is always rolled back, and why
#   that is cheap;
# - that a `COMMIT` inside a test is **not** undone by that rollback, and how `db_conn` catches it;
# - what a rollback does not reset: sequences and `now()`;
# - why application code with its own pool connections cannot see a test's rows, and two ways out.
#
# *About 45 minutes.*

# %%
from coursedb.notebook import setup

db_url = setup()

# %% [markdown]
# ## The idea
#
# Tests that share a database must not see each other's rows. The slow ways to get there delete every
# row after each test, or rebuild the schema. The cheap way: run each test **inside a transaction and roll
# it back** at the end. A rollback does not hunt down the rows the test wrote: PostgreSQL marks the
# whole transaction as *aborted*, and every row it wrote is from then on invisible to everyone. There is
# nothing to delete and no schema to rebuild.
# ([`benchmarks/isolation.py`](../benchmarks/isolation.py) compares the strategies on your machine.)
#
# The mechanism, by hand:

# %%
import asyncpg

import coursedb

conn = await asyncpg.connect(db_url)
await coursedb.empty_tables(conn)  # a clean start, also when you run this notebook again

transaction = conn.transaction()
await transaction.start()
await conn.execute("INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada')")
transaction_id = await conn.fetchval("SELECT pg_current_xact_id()")
print("inside the transaction:", await conn.fetchval("SELECT count(*) FROM users"), "user")
await transaction.rollback()
print("after the rollback:    ", await conn.fetchval("SELECT count(*) FROM users"), "users")
print("the transaction is now:", await conn.fetchval("SELECT pg_xact_status($1)", transaction_id))

# %% [markdown]
# The course's `db_conn` fixture in [`conftest.py`](../conftest.py) does exactly this around every test:
# borrow a connection from the pool, start a transaction, hand the connection to the test, roll back.
# Its teardown also checks one thing the test might have done, which you will meet in a moment.
#
# Proof that it works: the same user three times, with `email` unique. If any run's row survived, the
# next run would fail with a `UniqueViolationError`.

# %%
# %%ipytest
import pytest


@pytest.mark.parametrize("run", [1, 2, 3])
async def test_every_test_starts_with_empty_tables(db_conn, run):
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 0
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('same@example.com', $1)", f"run {run}")


# %% [markdown]
# ## Pitfall: "tests can even call COMMIT, the rollback undoes it"
#
# A popular article says so. It is false. `COMMIT` **ends** the fixture's transaction and makes its rows
# permanent; the fixture's `ROLLBACK` afterwards has nothing left to undo (the server only answers with a
# warning, "there is no transaction in progress").
#
# Here is the article's fixture, and two tests: the first commits, the second expects empty tables.

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


@pytest.fixture
async def naive_conn(db_pool):
    async with db_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        yield conn
        await transaction.rollback()


async def test_a_commits(naive_conn):
    await naive_conn.execute("INSERT INTO users (email, name) VALUES ('leak@example.com', 'Leak')")
    await naive_conn.execute("COMMIT")


async def test_b_expects_empty_tables(naive_conn):
    assert await naive_conn.fetchval("SELECT count(*) FROM users") == 0


# %% [markdown]
# `test_a_commits` passed and **broke a different test**: `test_b_expects_empty_tables` fails, though its own
# code is fine. In a real suite this shows up as a test that fails only after some other test ran: the
# hardest kind of failure to track down. The row is really there, committed:

# %%
print(await conn.fetch("SELECT email FROM users"))
await coursedb.empty_tables(conn)  # remove it, so the rest of the notebook starts clean

# %% [markdown]
# And this is all the server said to the fixture's `ROLLBACK` after the `COMMIT`: a warning, which
# nobody reads, not an error:

# %%
server_messages = []


def collect(connection, message):
    server_messages.append(f"{message.severity}: {message}")


conn.add_log_listener(collect)
await conn.execute("ROLLBACK")  # what the naive fixture sent, with no transaction open
conn.remove_log_listener(collect)
server_messages

# %% [markdown]
# The course's `db_conn` checks, after the test, whether the test ended the transaction itself. If it
# did, the fixture empties the tables (so no other test suffers) and **fails the test that committed**,
# with a message that says what to do. The same two tests with `db_conn`:

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


async def test_a_commits(db_conn):
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('leak@example.com', 'Leak')")
    await db_conn.execute("COMMIT")


async def test_b_expects_empty_tables(db_conn):
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 0


# %% [markdown]
# Now the failure points at the culprit (`ERROR at teardown of test_a_commits`), and `test_b` passes.
# Code that needs a transaction of its own should use `async with conn.transaction():`; inside the test's
# transaction asyncpg turns that into a savepoint, so it cannot end the outer transaction (notebook 04).

# %% [markdown]
# ## What a rollback does not reset
#
# A rollback undoes **rows**. Two things that tests often lean on are not rows.
#
# ### Sequences
#
# `SERIAL` ids come from a sequence, and a sequence never goes back: that is what lets concurrent
# transactions take ids without waiting for each other. Two inserts, each rolled back:


# %%
async def insert_and_roll_back(conn) -> int:
    transaction = conn.transaction()
    await transaction.start()
    try:
        return await conn.fetchval("INSERT INTO users (email, name) VALUES ('seq@example.com', 'S') RETURNING id")
    finally:
        await transaction.rollback()


first_id = await insert_and_roll_back(conn)
second_id = await insert_and_roll_back(conn)
print("second id == first id + 1:", second_id == first_id + 1)
print("users in the table:", await conn.fetchval("SELECT count(*) FROM users"))

# %% [markdown]
# The rows are gone, the ids are used up. So a test must never assume `id == 1`: it depends on what
# ran before. Take the id from `RETURNING id` instead.
#
# ### `now()`
#
# `now()` is the start time of the **transaction**, not of the statement. Under rollback isolation a whole
# test is one transaction, so `now()` never moves during a test; `clock_timestamp()` is the real clock:

# %%
async with conn.transaction():
    started = await conn.fetchval("SELECT now()")
    await conn.execute("SELECT pg_sleep(0.05)")
    print("now() moved:            ", await conn.fetchval("SELECT now()") != started)
    print("clock_timestamp() moved:", await conn.fetchval("SELECT clock_timestamp()") > started)

# %% [markdown]
# That matters for every column with `DEFAULT now()`, like `users.created_at`: all rows a test inserts
# get the **same** timestamp, so "the newest user" by `created_at` is a tie, and `ORDER BY created_at` alone
# returns the tied rows in whatever order the server likes. Order by `id` as well, or set the
# timestamps in the test.

# %%
# %%ipytest


async def test_rows_inserted_in_one_test_share_created_at(db_conn):
    for name in ("first", "second", "third"):
        await db_conn.execute("INSERT INTO users (email, name) VALUES ($1, $1)", f"{name}@example.com")
        await db_conn.execute("SELECT pg_sleep(0.01)")
    stamps = await db_conn.fetch("SELECT DISTINCT created_at FROM users")
    assert len(stamps) == 1


# %% [markdown]
# ## App code with its own connections cannot see the test's rows
#
# `shop.UserService` works like a web handler: every method borrows **its own** connection from a pool.
# The test's rows sit in an uncommitted transaction on the test's connection, and PostgreSQL shows
# uncommitted rows to no other connection:

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose
import shop


async def test_service_counts_the_user_the_test_created(db_conn, db_pool):
    await shop.create_user(db_conn, "ada@example.com", "Ada")
    service = shop.UserService(db_pool)
    assert await service.count_users() == 1


# %% [markdown]
# `assert 0 == 1`: the service looked from another connection. There are two ways out:
#
# | approach | how | cost |
# |---|---|---|
# | **join the test's transaction** | give the code the test's connection (dependency injection); a pool-shaped wrapper works for pool-based code | still rollback-fast; the code runs on one connection, so no real concurrency |
# | **commit for real** | the `db_committed` fixture: the real pool, tables emptied after the test | a `TRUNCATE` per test; tests the real transactions and concurrency |
#
# `db_committed` first: the service commits, so every connection sees the row.

# %%
# %%ipytest


async def test_service_sign_up_is_visible_to_everyone(db_committed):
    service = shop.UserService(db_committed)
    await service.sign_up("ada@example.com", "Ada")
    assert await service.count_users() == 1
    assert (await service.lookup("ADA@example.com"))["name"] == "Ada"


async def test_db_committed_left_nothing_behind(db_conn):
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 0


# %% [markdown]
# ## Exercise 3.1: let the service join the test's transaction (stretch)
#
# `UserService` only ever calls `pool.acquire()` and uses the result in `async with`. Write
# `pool_sharing(conn)`: it returns an object whose `acquire()` hands out `conn` itself, every time, also inside
# another `acquire()`, and leaves it exactly as it was: not closed, not released, not reset, with no
# transaction of its own around the block (a real pool adds none either), and without sending anything to the server. With it, `UserService(pool_sharing(db_conn))` runs inside the test's
# transaction, and the rollback undoes its work too.


# %% tags=["exercise"] exercise="3.1"
# Exercise 3.1: let the service join the test's transaction
def pool_sharing(conn):
    raise NotImplementedError("Exercise 3.1: return an object whose acquire() works in 'async with' and lends conn")


# %% tags=["solution"] exercise="3.1"
import contextlib
import types


def pool_sharing(conn):
    @contextlib.asynccontextmanager
    async def acquire():
        yield conn  # the test's connection: never released, never closed here

    return types.SimpleNamespace(acquire=acquire)


# %% tags=["checker", "raises-exception"] exercise="3.1"
# %%ipytest --exercise 3.1
import asyncio
import inspect

import asyncpg
import pytest

import shop


def lending(sharing):
    assert hasattr(sharing, "acquire"), (
        f"pool_sharing returned {sharing!r}, which has no acquire() method: UserService calls pool.acquire()"
    )
    lent = sharing.acquire()
    if not hasattr(lent, "__aenter__"):
        if inspect.iscoroutine(lent):
            lent.close()
        pytest.fail(f"acquire() returned a {type(lent).__name__}, which 'async with' cannot use", pytrace=False)
    return lent


async def test_acquire_lends_the_tests_connection(db_conn):
    """'async with pool.acquire() as c' gives the test's own connection, open and in its transaction afterwards."""
    async with lending(pool_sharing(db_conn)) as conn:
        assert conn is db_conn, f"acquire() lent {conn!r}, not the test's connection"
    assert not db_conn.is_closed(), "leaving 'async with' closed the test's connection: lend it, never close it"
    assert db_conn.is_in_transaction(), "leaving 'async with' ended the test's transaction: lend it, leave it as it is"


async def test_acquire_works_again_and_again(db_conn):
    """acquire() can be used any number of times, one after the other and one inside another, without waiting."""
    sharing = pool_sharing(db_conn)
    for _ in range(3):
        async with lending(sharing) as conn:
            assert conn is db_conn, f"a later acquire() lent {conn!r}, not the test's connection"

    async def nested():
        async with lending(sharing) as outer, lending(sharing) as inner:
            return outer, inner

    try:  # bounded: a lender that waits for its own borrower would wait for ever
        outer, inner = await asyncio.wait_for(nested(), 2)
    except asyncio.TimeoutError:
        hint = "acquire() inside acquire() waited 2 s for the outer block to end, which it never does:"
        pytest.fail(f"{hint} lend the connection to every borrower at once (the service nests them)", pytrace=False)
    assert outer is inner is db_conn, "acquire() inside acquire() did not lend the test's connection both times"


@pytest.mark.changes("statement_timeout", "application_name")  # the check's own SET LOCAL, not the answer's
async def test_leaving_the_block_keeps_the_session(db_conn):
    """Leaving 'async with acquire()' leaves the test's session as it was: its settings stay."""
    await db_conn.execute("SET LOCAL statement_timeout = '7s'; SET LOCAL application_name = 'the test'")
    async with lending(pool_sharing(db_conn)):
        pass
    found = tuple(
        await db_conn.fetchrow("SELECT current_setting('statement_timeout'), current_setting('application_name')")
    )
    assert found == ("7s", "the test"), (
        f"the test set statement_timeout 7s and application_name 'the test'; after the block they were {found}: "
        "acquire() reset the test's connection. Lend it and leave it as it is; the test's rollback cleans up"
    )


async def test_acquire_adds_no_transaction_of_its_own(db_conn):
    """An error in the block undoes nothing the block wrote: acquire() adds no savepoint, as a real pool adds none."""

    class Boom(Exception):
        pass

    try:
        async with lending(pool_sharing(db_conn)) as conn:
            await conn.execute("INSERT INTO users (id, email, name) VALUES (-7, 'half@example.com', 'Half done')")
            raise Boom
    except Boom:
        pass
    kept = await db_conn.fetchval("SELECT count(*) FROM users WHERE id = -7")
    assert kept == 1, (
        "the block inserted a user, then raised; afterwards the user was gone: acquire() added a transaction of "
        "its own (a savepoint) and rolled it back. On a real pool's connection the row stays, so a test of code that "
        "half-fails would pass with this lender and hide the bug: yield the connection with no transaction around it"
    )


async def test_errors_inside_the_block_reach_the_caller(db_conn):
    """The very exception raised inside 'async with pool.acquire()' reaches the code around it, as with a real pool:
    the same object, with everything it carries (a server error's constraint name and detail)."""

    class Boom(Exception):
        pass

    raised = Boom("with what it carries")
    try:
        async with lending(pool_sharing(db_conn)):
            raise raised
    except Boom as caught:
        assert caught is raised, (
            f"the block raised {raised!r}; the code around it caught {caught!r}, a copy: let the exception itself "
            "through"
        )
    else:
        pytest.fail("an exception raised inside 'async with acquire()' disappeared: __aexit__ must not swallow it")
    await db_conn.execute("INSERT INTO users (email, name) VALUES ('taken@example.com', 'First')")
    try:
        # the checker's savepoint first: after the failed statement the test goes on
        async with db_conn.transaction(), lending(pool_sharing(db_conn)) as conn:
            await conn.execute("INSERT INTO users (email, name) VALUES ('taken@example.com', 'Second')")
    except Exception as caught:  # which one, and what it carries, is the check
        found = (type(caught).__name__, getattr(caught, "constraint_name", None), getattr(caught, "detail", None))
        expected = ("UniqueViolationError", "users_email_key", "Key (email)=(taken@example.com) already exists.")
        assert found == expected, (
            f"a unique violation inside the block reached the caller as (type, constraint_name, detail) = {found}, "
            f"not {expected}: let the server's exception itself through, never a copy or another error in its place"
        )
    else:
        pytest.fail("a unique violation inside 'async with acquire()' disappeared: let it reach the caller")


async def test_acquire_sends_nothing_to_the_server(db_conn):
    """acquire() and leaving its block send no statement of their own: the borrower's statements are all there is."""
    sent = []

    def log(record) -> None:
        sent.append(record.query)

    db_conn.add_query_logger(log)
    try:
        async with lending(pool_sharing(db_conn)) as conn:
            await conn.fetchval("SELECT 'the borrower'")
        await asyncio.sleep(0)  # the logger is called soon after each statement
    finally:
        db_conn.remove_query_logger(log)
    own = [query for query in sent if query != "SELECT 'the borrower'"]
    assert not own, (
        f"acquire() sent statements of its own to the server: {own}. Lend the connection as it stands; a health "
        "check, a savepoint or a setting changes (or, in a failed transaction, breaks) the caller's session"
    )


async def test_lends_a_connection_with_no_transaction_too(db_pool):
    """On a connection with no transaction open (a script's, a pool's) acquire() lends it and leaves it with none."""
    async with db_pool.acquire() as plain:
        try:
            async with lending(pool_sharing(plain)) as conn:
                assert conn is plain, f"acquire() lent {conn!r}, not the connection pool_sharing was given"
                assert await conn.fetchval("SELECT 1") == 1
        except asyncpg.PostgresError as exc:
            pytest.fail(
                f"on a connection with no transaction open, acquire() raised {type(exc).__name__}: {exc}", pytrace=False
            )
        left = plain.is_in_transaction()
        if left:
            await plain.execute("ROLLBACK")
    assert not left, "acquire() left a connection that had no transaction inside one it opened: nobody commits it"


async def test_service_sees_the_tests_rows(db_conn):
    """UserService on the shared connection sees the rows the test wrote and has not committed."""
    await shop.create_user(db_conn, "ada@example.com", "Ada")
    service = shop.UserService(pool_sharing(db_conn))
    assert await service.count_users() == 1
    assert (await service.lookup("ada@example.com"))["name"] == "Ada"


async def test_service_writes_stay_in_the_tests_transaction(db_conn, db_pool):
    """What UserService writes stays in the test's transaction: nothing is committed."""
    service = shop.UserService(pool_sharing(db_conn))
    await service.sign_up("bob@example.com", "Bob")
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 1
    assert db_conn.is_in_transaction()  # the service's transaction was a savepoint
    async with db_pool.acquire() as other:  # nothing was committed
        assert await other.fetchval("SELECT count(*) FROM users") == 0


async def test_a_failed_sign_up_keeps_earlier_rows(db_conn):
    """A sign-up that fails (email taken) raises EmailTaken and undoes only itself."""
    service = shop.UserService(pool_sharing(db_conn))
    await service.sign_up("carol@example.com", "Carol")
    with pytest.raises(shop.EmailTaken):
        await service.sign_up("CAROL@example.com", "Carol again")
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 1


# %% [markdown] tags=["hint"] exercise="3.1"
# <details><summary>Hint 1</summary>
#
# `async with pool.acquire() as conn:` needs `acquire()` to return an *async context manager*: something with
# `__aenter__` and `__aexit__`. What it gives in `as conn` is up to you.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `contextlib.asynccontextmanager` turns an `async def` generator into one: `yield conn` inside it, with nothing
# after the `yield`. Return any object whose `acquire` attribute is that function, e.g. a
# `types.SimpleNamespace(acquire=...)`.
# </details>

# %% [markdown]
# ## Exercise 3.2: the newest user (a quick one, on `now()`)
#
# Write `newest_user(conn)`: the email of the user who signed up last, by `created_at`, or `None` when there are no
# users. Remember what you saw above: rows inserted in one transaction share their `created_at`, and then the
# one inserted last (the highest `id`) counts as newest, whatever the emails are. Users imported from an old system keep their old
# `created_at`, so a high `id` alone does not make a user new.


# %% tags=["exercise"] exercise="3.2"
# Exercise 3.2: the newest user
async def newest_user(conn) -> str | None:
    raise NotImplementedError("Exercise 3.2: one query; think about rows that share created_at")


# %% tags=["solution"] exercise="3.2"
async def newest_user(conn) -> str | None:
    return await conn.fetchval("SELECT email FROM users ORDER BY created_at DESC, id DESC LIMIT 1")


# %% tags=["checker", "raises-exception"] exercise="3.2"
# %%ipytest --exercise 3.2
import datetime

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from coursedb.checks import examples, savepoint

# No shrinking: a wrong answer fails at its first failing example, not seconds later at a smaller one.
NO_SHRINKING = [Phase.explicit, Phase.reuse, Phase.generate]

ADD_USER = "INSERT INTO users (email, name) VALUES ($1, 'someone')"
ADD_DATED_USER = "INSERT INTO users (email, name, created_at) VALUES ($1, 'someone', $2)"
START = datetime.datetime(2024, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


async def newest(conn) -> str | None:
    email = await newest_user(conn)
    assert email is None or isinstance(email, str), f"newest_user returned a {type(email).__name__}: return the email"
    return email


async def test_no_users_no_newest(db_conn):
    """With no users there is no newest user: None."""
    assert await newest(db_conn) is None


async def test_rows_of_one_transaction_tie_on_created_at(db_conn):
    """Among users who share the latest created_at, the one inserted last (highest id) is the newest, whatever
    the emails (here they sort neither in insertion order nor against it)."""
    for email in ("zed@example.com", "amy@example.com", "mia@example.com"):
        await db_conn.execute(ADD_USER, email)
    got = await newest(db_conn)
    assert got == "mia@example.com", (
        f"newest_user returned {got!r}, expected 'mia@example.com', inserted last (after zed@ and amy@). The three "
        "rows share created_at (now() is the time the transaction started): break the tie by id, not by email"
    )


async def test_an_imported_user_is_not_new(db_conn):
    """A user inserted later (higher id) with an older created_at is not the newest."""
    await db_conn.execute(ADD_USER, "new@example.com")
    await db_conn.execute(
        "INSERT INTO users (email, name, created_at) VALUES ('imported@example.com', 'old', '2020-01-01T00:00Z')"
    )
    got = await newest(db_conn)
    assert got == "new@example.com", (
        f"newest_user returned {got!r}, expected 'new@example.com': imported@example.com was inserted later "
        "(a higher id) but signed up in 2020, with an older created_at"
    )


async def test_a_user_changed_later_is_not_newer(db_conn):
    """Updating a user's row later does not make that user newer (nor does where the row now lies on disk)."""
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        await db_conn.execute(ADD_USER, email)
    await db_conn.execute("UPDATE users SET name = 'renamed' WHERE email = 'a@example.com'")  # a new row version
    got = await newest(db_conn)
    assert got == "c@example.com", (
        f"newest_user returned {got!r}, expected 'c@example.com': a@example.com was only renamed, and the three "
        "share created_at, so the highest id decides, not the order rows come back in"
    )


async def test_a_microsecond_counts(db_conn):
    """created_at one microsecond later is later: timestamps are compared exactly."""
    await db_conn.execute(ADD_DATED_USER, "later@example.com", START + datetime.timedelta(microseconds=1))
    await db_conn.execute(ADD_DATED_USER, "earlier@example.com", START)
    got = await newest(db_conn)
    assert got == "later@example.com", (
        f"newest_user returned {got!r}, expected 'later@example.com', whose created_at is 1 µs later"
    )


@pytest.mark.changes("TimeZone")  # the check's own SET LOCAL, not the answer's
async def test_the_session_time_zone_does_not_matter(db_conn):
    """created_at is compared as a moment in time, in any session time zone (also the hour a clock goes back)."""
    await db_conn.execute("SET LOCAL TIME ZONE 'Europe/Berlin'")  # 27 Oct 2024: 03:00 CEST became 02:00 CET
    await db_conn.execute(
        ADD_DATED_USER, "later@example.com", datetime.datetime(2024, 10, 27, 1, 10, tzinfo=datetime.timezone.utc)
    )
    await db_conn.execute(
        ADD_DATED_USER, "earlier@example.com", datetime.datetime(2024, 10, 27, 0, 30, tzinfo=datetime.timezone.utc)
    )
    got = await newest(db_conn)
    assert got == "later@example.com", (
        f"in time zone Europe/Berlin newest_user returned {got!r}, expected 'later@example.com' (01:10 UTC, written "
        "02:10+01) over 'earlier@example.com' (00:30 UTC, written 02:30+02): compare created_at, not its text"
    )


ADD_FULL_USER = "INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, $3, $4)"
UTC = datetime.timezone.utc
NEVER = datetime.datetime(9999, 12, 30, tzinfo=UTC)  # near a "never" sentinel some imports use (9999-12-31)
EDGES = {  # what the rows show: (id, email, name, created_at) in the order they are inserted
    "ids of different lengths (10 beats 9)": [(10, "ten@x", "T", START), (9, "nine@x", "N", START)],
    "names that sort against the ids": [(1, "zed@x", "Zed", START), (2, "amy@x", "Amy", START)],
    "a microsecond apart far in the future": [
        (1, "later@x", "L", NEVER + datetime.timedelta(microseconds=1)),
        (2, "earlier@x", "E", NEVER),
    ],
    "only users who signed up long ago": [
        (1, "old@x", "O", datetime.datetime(2009, 6, 1, tzinfo=UTC)),
        (2, "older@x", "O", datetime.datetime(1901, 1, 1, tzinfo=UTC)),
    ],
    "ids far from 1, negative ones too": [(2_000_000_000, "big@x", "B", START), (-5, "negative@x", "N", START)],
}


async def check_rows(conn, rows, what: str) -> None:
    async with savepoint(conn):
        for row in rows:
            await conn.execute(ADD_FULL_USER, *row)
        expected = max(rows, key=lambda row: (row[3], row[0]))[1]
        got = await newest(conn)
        shown = [(user_id, email, stamp.isoformat()) for user_id, email, _, stamp in rows]
        assert got == expected, (
            f"{what}: users (id, email, created_at) {shown}, newest_user returned {got!r}, expected {expected!r}: "
            "the latest created_at, compared exactly, then the highest id as a number"
        )


async def test_edge_rows(db_conn):
    """Ids of any length and sign, any names, sign-up times far in the past or future a microsecond apart: the latest
    created_at, then the highest id."""
    for what, rows in EDGES.items():
        await check_rows(db_conn, rows, what)


# Values spread over the columns' whole domain, few enough that examples share created_at, ids and names often.
MOMENTS = st.sampled_from([datetime.datetime(1901, 1, 1, tzinfo=UTC), datetime.datetime(2009, 6, 1, tzinfo=UTC), START,
                           datetime.datetime(2999, 1, 1, tzinfo=UTC), NEVER])  # fmt: skip
OFFSETS = st.sampled_from([0, 1, 999_999, 86_400_000_000])  # microseconds after the moment
USERS = st.lists(
    st.tuples(
        st.sampled_from([-7, 1, 9, 10, 99, 100, 2_000_000_000]),
        st.sampled_from(["Zed", "Amy", "someone"]),
        MOMENTS,
        OFFSETS,
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda user: user[0],
)


@settings(examples(12), phases=NO_SHRINKING)
@given(users=USERS)
async def test_any_users_in_any_order(db_conn, users):
    """For users inserted in any order, with any ids, names and created_at (equal or not): latest created_at, then
    highest id."""
    rows = [
        (user_id, f"{'mzaby'[number]}{number}@x", name, moment + datetime.timedelta(microseconds=offset))
        for number, (user_id, name, moment, offset) in enumerate(users)
    ]
    await check_rows(db_conn, rows, "generated users")


# %% [markdown] tags=["hint"] exercise="3.2"
# <details><summary>Hint 1</summary>
#
# `ORDER BY created_at DESC LIMIT 1` picks *one of* the rows with the latest `created_at`; when several share it,
# which one is up to the server.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `ORDER BY` takes several columns: the second decides only among rows equal in the first.
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
# - Rollback isolation: one transaction per test, always rolled back. No rows to delete, no schema to rebuild.
# - A `COMMIT` inside a test ends that transaction: its rows are permanent and break *other* tests.
#   `db_conn` detects it and fails the test that committed; use `async with conn.transaction()` instead.
# - A rollback does not reset sequences (never assert `id == 1`) and `now()` is frozen for the whole test
#   (rows get equal `created_at`; order by `id` too).
# - Code that takes its own pool connections cannot see a test's uncommitted rows. Either hand it the test's
#   connection, or let it commit with `db_committed`, which cleans up after the test.


# %% [markdown]
# ## Where you stand
#
# Your checker runs in this notebook, as recorded (never your code); `show()` without a number, or
# `python3 course.py progress`, shows the whole course.

# %% tags=["progress"]
from coursedb.progress import show

show("03")
