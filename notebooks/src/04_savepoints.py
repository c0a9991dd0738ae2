# %% [markdown]
# # 04 · Savepoints: a transaction inside a transaction
#
# **You will learn**
# - what asyncpg sends to the server when you nest `conn.transaction()` blocks, and how to watch it;
# - why one error without a savepoint ruins the whole transaction;
# - that `BEGIN` inside a transaction is a *warning*, not an error;
# - how to test code that manages its own transaction, with rollback isolation still intact;
# - how to test a rollback-on-error path so that the test can really fail.
#
# *About 60 minutes.*

# %% [markdown]
# ## The idea
#
# A PostgreSQL connection has at most **one** transaction at a time. There is no real nesting.
# What PostgreSQL has instead is the **savepoint**: a named mark inside the running transaction
# that you can roll back to, undoing only the work done since the mark.
#
# asyncpg builds nesting out of savepoints. When you enter `async with conn.transaction():`
# it looks at the connection first:
#
# | `conn.transaction()` block | no transaction open yet | a transaction is already open |
# |---|---|---|
# | entering | `BEGIN` | `SAVEPOINT <name>` |
# | leaving normally | `COMMIT` | `RELEASE SAVEPOINT <name>` |
# | leaving with an exception | `ROLLBACK` | `ROLLBACK TO <name>` |
#
# That right-hand column is what makes rollback isolation work for code that opens its own
# transactions: the `db_conn` fixture's transaction is the outer one, so everything your
# application calls a "transaction" becomes a savepoint inside it. Let's watch it happen.

# %%
from coursedb.notebook import setup

db_url = setup()

# %% [markdown]
# ## Live code: see what asyncpg sends
#
# `conn.add_query_logger` calls a function for every statement the connection sends. We keep
# the SQL text in a list. asyncpg also sends queries of its own (for instance to look up a data
# type it has not met before), so `show_sent()` prints only the statements this lesson is about.
# Print `sent` whole if you are curious. `begin()` and `rollback()` start and end the outer transaction
# of each demo; they first roll back whatever an earlier run of a cell left open, so you can re-run any cell.

# %%
import asyncpg

conn = await asyncpg.connect(db_url)
sent = []
conn.add_query_logger(lambda logged: sent.append(logged.query))


def show_sent():
    lesson = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "INSERT")
    print(*[query for query in sent if query.startswith(lesson)], sep="\n")


outer = None  # the outer transaction of the demo at hand


async def begin():
    """Start an outer transaction by hand: conn.transaction(), then start().

    Whatever an earlier run of a cell left open is rolled back first, so any cell below can run again.
    """
    global outer
    await rollback()
    outer = conn.transaction()
    await outer.start()


async def rollback():
    """Roll back the outer transaction (or one begun with raw SQL); running it twice is harmless."""
    if not conn.is_in_transaction():
        return
    try:
        await outer.rollback()
    except (AttributeError, asyncpg.InterfaceError):  # no outer, or it has ended: a raw BEGIN's transaction
        await conn.execute("ROLLBACK")


# %% [markdown]
# An outer transaction, one inner block that succeeds and one that fails on a duplicate email
# (`users.email` is `UNIQUE`). We start the outer transaction by hand (`begin()` above) so that we can
# roll it back at the end (`rollback()`) and leave the database empty.

# %%
ADD_USER = "INSERT INTO users (email, name) VALUES ($1, $2)"

sent.clear()
await begin()
await conn.execute(ADD_USER, "ada@example.com", "Ada")

async with conn.transaction():
    await conn.execute(ADD_USER, "alan@example.com", "Alan")

try:
    async with conn.transaction():
        await conn.execute(ADD_USER, "grace@example.com", "Grace")
        await conn.execute(ADD_USER, "ada@example.com", "Ada again")
except asyncpg.UniqueViolationError as exc:
    print("inner block failed:", exc)

# %% [markdown]
# What asyncpg sent (it numbers its savepoints per connection):

# %%
show_sent()

# %% [markdown]
# And what the outer transaction holds now. Grace was inserted before the failure, in the failed
# block, so `ROLLBACK TO` removed her. Ada and Alan are untouched, and the transaction is still usable:

# %%
await conn.fetch("SELECT email FROM users ORDER BY email")

# %%
await rollback()
await conn.fetchval("SELECT count(*) FROM users")

# %% [markdown]
# ## Pitfall: an error without a savepoint aborts everything
#
# Catching a database error in Python does **not** undo it on the server. Once a statement fails
# inside a transaction, PostgreSQL refuses every further statement until the transaction ends.
# Here is a tempting bit of code: "if the email is taken, skip that user and carry on"
# (`shop.create_user` turns the unique violation into `EmailTaken`):

# %% tags=["raises-exception"]
from shop import EmailTaken, create_user

await begin()
await create_user(conn, "ada@example.com", "Ada")
try:
    await create_user(conn, "ada@example.com", "Ada again")
except EmailTaken:
    print("Ada is already there: skip her and carry on")
await create_user(conn, "grace@example.com", "Grace")

# %% [markdown]
# The `except` ran, yet Grace's perfectly valid insert failed: the transaction is *aborted*.
# Nothing but `ROLLBACK` (or `ROLLBACK TO` a savepoint set before the error) gets it going again,
# and everything in it, Ada included, is lost:

# %%
print("still in a transaction:", conn.is_in_transaction())
await rollback()
await conn.fetchval("SELECT count(*) FROM users")

# %% [markdown]
# The cure is the pattern from the first demo: give each statement that may fail a savepoint of
# its own (`async with conn.transaction():` around it). You will write exactly that in Exercise 4.1.

# %% [markdown]
# ## `BEGIN` inside a transaction is a warning, not an error
#
# The article this course started from claims: *"If your application code calls BEGIN inside the
# test, you'll get an error."* Let's ask the server. `conn.add_log_listener` receives the notices
# and warnings the server sends along with a result. `pg_current_xact_id()` is the id of the
# running transaction.

# %%
messages = []


def remember(connection, message):
    messages.append(message)


conn.add_log_listener(remember)
await begin()
await conn.execute(ADD_USER, "ada@example.com", "Ada")
before = await conn.fetchval("SELECT pg_current_xact_id()")
await conn.execute("BEGIN")
after = await conn.fetchval("SELECT pg_current_xact_id()")
conn.remove_log_listener(remember)

for message in messages:
    print(f"{message.severity} (SQLSTATE {message.sqlstate}): {message}")
print("same transaction as before BEGIN:", before == after)

# %% [markdown]
# No exception: one `WARNING`, and we are still in the same transaction. The `BEGIN` did not
# commit Ada either. Rolling back the outer transaction removes her:

# %%
await rollback()
await conn.fetchval("SELECT count(*) FROM users WHERE email = 'ada@example.com'")

# %% [markdown]
# ## The article's "savepoint fixture" is not needed, and it breaks asyncpg
#
# To dodge that imaginary error, the article proposed a fixture that sends raw SQL:
# `BEGIN`, `SAVEPOINT test_start`, then after the test `ROLLBACK TO SAVEPOINT test_start` and
# `ROLLBACK`. With asyncpg this is unnecessary twice over:
#
# - the problem does not exist (see above), and code that uses `conn.transaction()` already gets a
#   savepoint when the test's transaction is open;
# - `ROLLBACK` alone undoes everything; rolling back to a savepoint first changes nothing.
#
# Worse, asyncpg keeps track of the transactions *it* started. A transaction begun with raw SQL
# is invisible to that bookkeeping, and asyncpg refuses to guess. Here is the article's fixture
# setup, followed by a call to application code that opens its own transaction:

# %% tags=["raises-exception"]
from shop import register_with_first_order

await conn.execute("BEGIN")
await conn.execute("SAVEPOINT test_start")
await register_with_first_order(conn, "ada@example.com", "Ada", "25.00")

# %% [markdown]
# Every function under test that uses `conn.transaction()` would fail like this. The course's
# `db_conn` fixture uses `conn.transaction()` itself, so asyncpg knows the outer transaction and
# nests correctly. Clean up the raw transaction:

# %%
await conn.execute("ROLLBACK")
conn.is_in_transaction()

# %% [markdown]
# ## Testing code that manages its own transaction
#
# `shop.register_with_first_order` creates a user and their first order together: if the order
# fails, there must be no user. It opens `async with conn.transaction():` itself. Inside a test's
# transaction that block becomes a savepoint:

# %%
sent.clear()
await begin()  # plays the part of db_conn's transaction
await register_with_first_order(conn, "ada@example.com", "Ada", "25.00")
await rollback()
show_sent()

# %% [markdown]
# So the all-or-nothing behaviour can be tested with ordinary rollback isolation. Amounts are
# passed as `str` (or `Decimal`), never `float`: `orders.total` is `NUMERIC`, and notebook 05
# shows what a float does to it. An order total below zero breaks the table's `CHECK (total >= 0)`.

# %%
# %%ipytest
from decimal import Decimal

import asyncpg
import pytest

from shop import find_user_by_email, order_total, register_with_first_order


async def test_registration_creates_user_and_order(db_conn):
    user_id = await register_with_first_order(db_conn, "ada@example.com", "Ada", "25.50")
    assert await order_total(db_conn, user_id) == Decimal("25.50")


async def test_failed_order_leaves_no_user(db_conn):
    with pytest.raises(asyncpg.CheckViolationError):
        await register_with_first_order(db_conn, "bob@example.com", "Bob", "-1.00")
    assert await find_user_by_email(db_conn, "bob@example.com") is None


async def test_failed_registration_keeps_the_callers_earlier_work(db_conn):
    ada_id = await register_with_first_order(db_conn, "ada@example.com", "Ada", "10.00")
    with pytest.raises(asyncpg.CheckViolationError):
        await register_with_first_order(db_conn, "bob@example.com", "Bob", "-1.00")
    assert (await find_user_by_email(db_conn, "ada@example.com"))["id"] == ada_id
    assert await order_total(db_conn, ada_id) == Decimal("10.00")


# %% [markdown]
# The third test is the one that proves a *savepoint* was used: after Bob's failure, the test's
# own transaction still works and still holds Ada. Without the savepoint the first query after
# the error would raise `InFailedSQLTransactionError`, as in the pitfall above.
#
# Can these tests fail? Here is the bug they exist to catch: the same two statements, but no
# transaction around them.

# %%
from shop import place_order


async def register_without_a_transaction(conn, email, name, total):
    user_id = await create_user(conn, email, name)
    await place_order(conn, user_id, total)  # if this fails, the user is already written
    return user_id


# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


async def test_broken_version_leaves_no_user(db_conn):
    with pytest.raises(asyncpg.CheckViolationError):
        await register_without_a_transaction(db_conn, "bob@example.com", "Bob", "-1.00")
    assert await db_conn.fetchval("SELECT count(*) FROM users WHERE email = 'bob@example.com'") == 0


# %% [markdown]
# Red, as it should be, though not with "Bob exists". The last line of the report says why: inside
# the test's transaction the failed order aborted the *whole* transaction, so the test's next query
# was refused (the lines above it are asyncpg's own code, on the way to that error).

# %% [markdown]
# ## Testing a rollback-on-error path
#
# The article tested "an order batch rolls back on a foreign-key violation" like this: insert a
# user, then in `try:` a transaction block with a good order (`100.00`) and an order for user
# `99999`, `except ForeignKeyViolationError: pass`, then assert the user has no orders. Three things
# to fix:
#
# | the article | why it is weak | below |
# |---|---|---|
# | `try: … except …: pass` | the test does not state that the error must happen | `pytest.raises` fails the test if nothing is raised |
# | `100.00`, a `float`, for a `NUMERIC` column | floats are binary approximations (notebook 05) | `Decimal("100.00")` |
# | only checks that the orders are gone | a rollback of *everything* would pass too | also checks the user, written outside the block, survived |
# | user `99999` "does not exist" | only true while the sequence is small | `-1`: a `SERIAL` id is never negative |

# %%
# %%ipytest
from decimal import Decimal

import asyncpg
import pytest

from shop import create_user, find_user_by_email

ADD_ORDER = "INSERT INTO orders (user_id, total) VALUES ($1, $2)"
NO_SUCH_USER = -1


async def test_order_batch_rolls_back_on_a_foreign_key_violation(db_conn):
    user_id = await create_user(db_conn, "tx@example.com", "TX User")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with db_conn.transaction():
            await db_conn.execute(ADD_ORDER, user_id, Decimal("100.00"))
            await db_conn.execute(ADD_ORDER, NO_SUCH_USER, Decimal("50.00"))
    assert await db_conn.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", user_id) == 0
    assert (await find_user_by_email(db_conn, "tx@example.com"))["id"] == user_id


# %% [markdown]
# ## Exercise 4.1: import users, skipping the ones that exist (core)
#
# Write `import_users(conn, people)`. `people` is a list of `(email, name)` pairs. Insert each one
# with `shop.create_user`; when it raises `EmailTaken`, skip that person and carry on. Any other error must
# reach the caller. Return the emails you skipped, as they were given, in order. It must work inside a
# transaction (the checker uses `db_conn`), which is exactly where the pitfall above bites; on a connection with no
# transaction open (then what it imports is committed, and it leaves no transaction open); and while other
# connections add users at the same moment.

# %% tags=["exercise"] exercise="4.1"
# Exercise 4.1: import users, skipping duplicates
from shop import EmailTaken, create_user


async def import_users(conn, people: list[tuple[str, str]]) -> list[str]:
    raise NotImplementedError("Exercise 4.1: remember the pitfall above: what must surround each insert that may fail?")


# %% tags=["solution"] exercise="4.1"
from shop import EmailTaken, create_user


async def import_users(conn, people: list[tuple[str, str]]) -> list[str]:
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():  # a savepoint: a failure undoes this person only
                await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email)
    return skipped


# %% tags=["checker", "raises-exception"] exercise="4.1"
# %%ipytest --exercise 4.1
import asyncio

import asyncpg
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from coursedb.checks import blocked, cancel_while_waiting, examples, savepoint, waits_for
from shop import EmailTaken, create_user

ABORTED = (
    "the transaction was aborted by the first taken email: catching EmailTaken in Python does not undo the failed "
    "INSERT on the server (the pitfall above)"
)


async def imported(conn, people) -> list[str]:
    try:
        skipped = await import_users(conn, people)
    except asyncpg.InFailedSQLTransactionError:
        pytest.fail(ABORTED, pytrace=False)
    try:
        await conn.fetchval("SELECT 1")
    except asyncpg.InFailedSQLTransactionError:
        pytest.fail(ABORTED + "; the caller's next query fails", pytrace=False)
    assert conn.is_in_transaction(), "import_users ended the caller's transaction: everything the caller did is gone"
    return skipped


async def emails(conn) -> list[str]:
    return [row["email"] for row in await conn.fetch("SELECT email FROM users ORDER BY email")]


async def test_import_adds_everyone_new(db_conn):
    """Everyone new is added, names exactly as given, and nobody is skipped."""
    people = [("alan@example.com", "Alan"), ("grace@example.com", "Grace O'Hara"), ("zoë@example.com", "Zoë 😀")]
    skipped = await imported(db_conn, people)
    assert skipped == [], f"import_users skipped {skipped} of three new people"
    added = await db_conn.fetch("SELECT email, name FROM users ORDER BY email")
    assert [tuple(row) for row in added] == sorted(people), f"after importing three new people the table holds {added}"


async def test_import_skips_taken_emails_and_keeps_the_rest(db_conn):
    """A taken email is skipped, the people before and after it are added, and the caller's rows stay."""
    await create_user(db_conn, "ada@example.com", "Ada")
    people = [("alan@example.com", "Alan"), ("ADA@example.com", "Ada again"), ("grace@example.com", "Grace")]
    skipped = await imported(db_conn, people)
    assert skipped == ["ADA@example.com"], (
        f"import_users returned {skipped}: expected the skipped emails as they were given, ['ADA@example.com']"
    )
    assert await emails(db_conn) == ["ada@example.com", "alan@example.com", "grace@example.com"]


async def test_a_batch_that_repeats_an_email(db_conn):
    """An email taken earlier in the same batch is skipped too, every time, in the order given."""
    people = [("bo@example.com", "Bo"), ("BO@example.com", "Bo 2"), ("cy@example.com", "Cy"), ("bo@example.com", "B")]
    skipped = await imported(db_conn, people)
    assert skipped == ["BO@example.com", "bo@example.com"], (
        f"import_users returned {skipped}: bo@example.com was imported first, so both later spellings are taken"
    )
    assert await emails(db_conn) == ["bo@example.com", "cy@example.com"]


# Spellings that collide only sometimes: ASCII case (create_user stores lower(email), which folds it), non-ASCII
# case (the course database's C locale leaves 'Ä' as it is, so 'Äda' and 'äda' are two users), a space, no '@'.
EMAILS = st.sampled_from([
    "ada@example.com", "ADA@example.com", "Ada@Example.COM", "bo@example.com", "BO@example.com", "äda@example.com",
    "Äda@example.com", "zoë@example.com", "ZOË@example.com", " ada@example.com", "legacy-user-17", "LEGACY-user-17",
])  # fmt: skip
NAMES = st.sampled_from(["Ada", "Ada ", " Ada", "Ada\n", "Zoë 😀", ""]) | st.text(max_size=4).map(
    lambda text: text.replace("\x00", "")  # text columns cannot hold NUL
)


async def expected_import(conn, people) -> tuple[list[str], list[tuple[str, str]]]:
    """What importing people one by one must give: (the emails skipped, the users table after), worked out with the
    server's own lower(), as create_user applies it."""
    stored = await conn.fetchval(
        "SELECT array_agg(lower(email) ORDER BY n) FROM unnest($1::text[]) WITH ORDINALITY AS p(email, n)",
        [email for email, _ in people],
    )
    users = [tuple(row) for row in await conn.fetch("SELECT email, name FROM users")]
    taken, skipped = {email for email, _ in users}, []
    for (email, name), lowered in zip(people, stored or [], strict=True):
        if lowered in taken:
            skipped.append(email)
        else:
            taken.add(lowered)
            users.append((lowered, name))
    return skipped, sorted(users)


@settings(examples(10), phases=[Phase.explicit, Phase.generate])
@given(existing=st.lists(EMAILS, max_size=3), people=st.lists(st.tuples(EMAILS, NAMES), max_size=6))
@example(
    existing=["ada@example.com"], people=[("bo@example.com", "Bo"), ("BO@example.com", "B"), ("ADA@example.com", "A")]
)
@example(existing=[], people=[("Äda@example.com", "Äda"), ("äda@example.com", "äda"), ("ÄDA@example.com", "Ä")])
@example(existing=["ada@example.com"], people=[(" ada@example.com", "Ada"), ("ada@example.com\n", "Ada\t")])
@example(existing=["zoë@example.com"], people=[("Zoë@example.com", " Zoë\n"), ("ZOË@example.com", "Zoë ")])
async def test_any_batch_skips_exactly_the_taken_emails(db_conn, existing, people):
    """For any batch and any users already there: a person is skipped exactly when their email, as create_user
    stores it (the server's lower(), which leaves non-ASCII letters alone), is taken by then, by a user already there
    or by someone earlier in the batch; the skipped emails come back as given, in the order given; everyone else is
    stored with the name exactly as given."""
    async with savepoint(db_conn):
        for email in existing:
            await db_conn.execute(
                "INSERT INTO users (email, name) VALUES (lower($1), 'x') ON CONFLICT DO NOTHING", email
            )
        want_skipped, want_users = await expected_import(db_conn, people)
        skipped = await imported(db_conn, people)
        users = sorted(tuple(row) for row in await db_conn.fetch("SELECT email, name FROM users"))
        situation = f"users there before: {existing}; importing {people}"
        assert skipped == want_skipped, (
            f"import_users returned {skipped}, expected {want_skipped} (the skipped emails as given, in the order "
            f"given; only emails taken by then, as the server's lower() makes them). {situation}"
        )
        assert users == want_users, (
            f"after the import the users table holds {users}, expected {want_users}: everyone not skipped stored "
            f"with the name as given. {situation}"
        )


async def test_an_empty_list_imports_nothing(db_conn):
    """No people: nothing added, nothing skipped."""
    assert await imported(db_conn, []) == [], "import_users of no people skipped someone"


async def test_other_errors_are_not_skipped(db_conn):
    """Only EmailTaken means skip: any other error (a missing name) reaches the caller."""
    try:
        skipped = await imported(db_conn, [("nameless@example.com", None)])  # name is NOT NULL
    except asyncpg.NotNullViolationError:
        return
    hint = f"a person without a name was skipped as {skipped}: only EmailTaken means skip, let other errors through"
    pytest.fail(hint, pytrace=False)


async def test_works_with_no_transaction_open(db_committed):
    """On a connection with no transaction open, the new people are committed, the taken one skipped, and no
    transaction is left open."""
    async with db_committed.acquire() as conn, db_committed.acquire() as other:
        await create_user(conn, "ada@example.com", "Ada")
        people = [("alan@example.com", "Alan"), ("ADA@example.com", "Ada again"), ("grace@example.com", "Grace")]
        try:
            skipped = await import_users(conn, people)
        except asyncpg.PostgresError as exc:
            hint = f"on a connection with no transaction open, import_users raised {type(exc).__name__}: {exc}"
            pytest.fail(hint + " (asyncpg's conn.transaction() works with and without one)", pytrace=False)
        open_after = conn.is_in_transaction()
        assert not open_after, (
            "on a connection with no transaction open, import_users left a transaction open: nothing it imported "
            "is committed, and the connection's next user works inside it. Close every transaction you start"
        )
        assert skipped == ["ADA@example.com"], f"import_users returned {skipped}, expected ['ADA@example.com']"
        seen = await emails(other)
        assert seen == ["ada@example.com", "alan@example.com", "grace@example.com"], (
            f"another connection sees the users {seen} after the import: with no transaction around the call, "
            "each person imported must be committed"
        )


async def test_an_error_leaves_no_transaction_open(db_committed):
    """On a connection with no transaction open, an error other than EmailTaken reaches the caller and leaves no
    transaction open behind it."""
    async with db_committed.acquire() as conn:
        people = [("alan@example.com", "Alan"), ("nameless@example.com", None), ("grace@example.com", "Grace")]
        try:
            skipped = await import_users(conn, people)
        except asyncpg.NotNullViolationError:
            pass
        else:
            hint = f"a person without a name was skipped as {skipped}: only EmailTaken means skip"
            pytest.fail(hint + ", let other errors through", pytrace=False)
        assert not conn.is_in_transaction(), (
            "on a connection with no transaction open, a person without a name raised, and import_users left a "
            "transaction open behind it: the connection's next user works inside it. End every transaction you start, "
            "whatever the exception (async with conn.transaction() does)"
        )
        await conn.fetchval("SELECT 1")  # and the connection works


async def import_beside(pool, other_commits: bool) -> tuple[list[str], str | None]:
    """Another connection inserts ada@example.com and has not committed when the import reaches her."""
    async with pool.acquire() as other, pool.acquire() as importer, importer.transaction():
        other_transaction = other.transaction()
        await other_transaction.start()
        await other.execute("INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada')")
        people = [("alan@example.com", "Alan"), ("ada@example.com", "Ada again")]
        running = asyncio.create_task(import_users(importer, people))
        await waits_for(importer, other, running)  # the server's lock graph: the import waits for that row
        await (other_transaction.commit() if other_commits else other_transaction.rollback())
        try:
            skipped = await asyncio.wait_for(running, timeout=10)
        except EmailTaken:
            hint = "EmailTaken escaped import_users: another connection inserted ada@example.com after your check"
            pytest.fail(hint + " and before your insert. Handle the insert that fails, not a look-up", pytrace=False)
        except asyncpg.InFailedSQLTransactionError:
            pytest.fail(ABORTED, pytrace=False)
        names = {row["email"]: row["name"] for row in await importer.fetch("SELECT email, name FROM users")}
        assert names.get("alan@example.com") == "Alan", "alan@example.com, first in the list, was not imported"
        return skipped, names.get("ada@example.com")


async def test_an_email_another_connection_takes_meanwhile_is_skipped(db_committed):
    """Another connection inserts the same email and commits while the import waits for it: it is skipped."""
    skipped, _ = await import_beside(db_committed, other_commits=True)
    assert skipped == ["ada@example.com"], f"import_users returned {skipped}, expected ['ada@example.com']"


async def test_an_email_another_connection_gives_up_is_imported(db_committed):
    """Another connection inserts the same email and rolls back while the import waits: she is imported."""
    skipped, ada = await import_beside(db_committed, other_commits=False)
    assert skipped == [], (
        f"import_users returned {skipped}, but the other connection rolled back: ada@example.com was free after all"
    )
    assert ada == "Ada again", "the other connection rolled back, yet ada@example.com was not imported"


async def test_a_cancelled_import_ends_cancelled(db_committed):
    """An import cancelled while it waits for another connection's insert of the same email (the caller's time limit
    ran out) ends cancelled, leaves no transaction open on a connection that had none, and the connection usable."""
    async with db_committed.acquire() as other, db_committed.acquire() as conn:
        holding = other.transaction()
        await holding.start()
        await other.execute("INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada')")
        people = [("alan@example.com", "Alan"), ("ada@example.com", "Ada again")]
        task = await cancel_while_waiting(import_users(conn, people), conn, other)
        await holding.rollback()
        if not task.done():
            pytest.fail("a cancelled import_users had not ended 5 s later", pytrace=False)
        if not task.cancelled():
            error = task.exception()
            how = f"raised {type(error).__name__}: {error}" if error else f"returned {task.result()!r}"
            pytest.fail(f"import_users was cancelled but {how}: let the cancellation through", pytrace=False)
        assert not conn.is_in_transaction(), (
            "a cancelled import_users left a transaction open on a connection that had none: end every transaction "
            "you start whatever the exception, a cancellation too (async with conn.transaction() does)"
        )
        try:
            await conn.fetchval("SELECT 1")
        except asyncpg.InterfaceError as exc:
            pytest.fail(f"after a cancelled import_users the connection refused the next query ({exc})", pytrace=False)


async def test_locks_only_what_it_writes(db_committed):
    """While the caller's transaction around the import is still open, other connections go on at once: they add
    another user, and rename a user whose email the import found taken."""
    async with db_committed.acquire() as conn, db_committed.acquire() as other:
        await create_user(conn, "ada@example.com", "Ada")
        async with savepoint(conn):  # the caller's transaction, open while another connection tries
            await import_users(conn, [("alan@example.com", "Alan"), ("ADA@example.com", "Ada again")])
            held_up = await blocked(
                other,
                {
                    "add another user": "INSERT INTO users (email, name) VALUES ('bo@example.com', 'Bo')",
                    "rename ada@example.com": "UPDATE users SET name = 'Ada L.' WHERE email = 'ada@example.com'",
                },
            )
        if held_up:
            pytest.fail(
                f"while the caller's transaction is open after import_users, another connection cannot "
                f"{' or '.join(held_up)}: the import locks more than the rows it inserts",
                pytrace=False,
            )


# %% [markdown] tags=["hint"] exercise="4.1"
# <details><summary>Hint 1</summary>
#
# Looking up the email first is not enough: another connection can insert it between your look-up and your
# insert (the checker does exactly that). Try the insert, and deal with the failure.
# </details>
#
# <details><summary>Hint 2</summary>
#
# A failed statement aborts the whole transaction unless a savepoint was set just before it. In asyncpg a savepoint
# is `async with conn.transaction():` inside the transaction that is already open.
# </details>
#
# <details><summary>Hint 3</summary>
#
# For each person: `try:` a savepoint block around `create_user`, `except EmailTaken:` remember the email.
# Catch nothing else: other errors must reach the caller.
# </details>

# %% [markdown]
# ## Exercise 4.2: a batch of orders, all or nothing (stretch)
#
# Write `place_orders(conn, user_id, totals)`: place one order per total (with `shop.place_order`) and return their
# ids. If any order fails, **none** of the batch may remain, the error must reach the caller, and the caller's own
# transaction must go on working, with everything the caller did before the call still there.

# %% tags=["exercise"] exercise="4.2"
# Exercise 4.2: a batch of orders, all or nothing
from shop import place_order


async def place_orders(conn, user_id: int, totals: list[str]) -> list[int]:
    raise NotImplementedError("Exercise 4.2: which block makes several statements succeed or fail together here?")


# %% tags=["solution"] exercise="4.2"
from shop import place_order


async def place_orders(conn, user_id: int, totals: list[str]) -> list[int]:
    async with conn.transaction():  # inside the caller's transaction: a savepoint, undone as a whole on error
        return [await place_order(conn, user_id, total) for total in totals]


# %% tags=["checker", "raises-exception"] exercise="4.2"
# %%ipytest --exercise 4.2
import asyncio
from decimal import Decimal

import asyncpg
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from coursedb.checks import blocked, cancel_while_waiting, examples, savepoint
from coursedb.lockstep import Lockstep
from shop import create_user, place_order

USERS_ORDERS = "SELECT id, total::text FROM orders WHERE user_id = $1 ORDER BY id"
# What the column makes of each total, as shop.place_order sends it (a Decimal): numeric(10, 2) rounds half away
# from zero, on the server.
AS_STORED = (
    "SELECT array_agg(total::numeric(10, 2)::text ORDER BY n) FROM unnest($1::numeric[]) WITH ORDINALITY AS b(total, n)"
)


async def placed(conn, user_id, totals) -> list[int]:
    ids = await place_orders(conn, user_id, totals)
    rows = await conn.fetch(USERS_ORDERS, user_id)
    stored = [row["total"] for row in rows]
    expected = await conn.fetchval(AS_STORED, [Decimal(total) for total in totals]) or []
    assert stored == expected, (
        f"place_orders placed {stored} for {totals}: expected {expected}, one order per total in the order given, "
        "each stored as shop.place_order stores the total as given (numeric(10, 2) rounds it on the server)"
    )
    assert ids == [row["id"] for row in rows], f"place_orders returned {ids!r}, expected the ids of the new orders"
    return ids


async def test_places_them_all_and_returns_their_ids(db_conn):
    """One order per total, in the order given, and their ids in that order; exact to the cent."""
    user_id = await create_user(db_conn, "ada@example.com", "Ada")
    await placed(db_conn, user_id, ["10.00", "0.01", "99999999.99", "2.50"])


async def test_one_total_and_none(db_conn):
    """One total places one order; no totals place nothing and return []."""
    user_id = await create_user(db_conn, "ada@example.com", "Ada")
    await placed(db_conn, user_id, [])
    await placed(db_conn, user_id, ["7.00"])


# Any total numeric(10, 2) takes, written with up to 4 decimals: more than the column keeps, half-way values too.
TOTALS = st.integers(0, 4).flatmap(lambda places: st.decimals(0, Decimal("99999999.994"), places=places)).map(str)


@settings(examples(10), phases=[Phase.explicit, Phase.generate])
@given(totals=st.lists(TOTALS, max_size=5))
@example(totals=["0.125", "1.005", "2.675", "0.005", "99999999.994", "0.0049", "7", "0"])
async def test_any_totals_are_stored_as_given(db_conn, totals):
    """Any totals the column takes (more decimals than it keeps, half-way values, its limits): one order per total,
    in the order given, each stored as shop.place_order stores that total, and their ids returned in that order."""
    async with savepoint(db_conn):
        user_id = await create_user(db_conn, "ada@example.com", "Ada")
        await placed(db_conn, user_id, totals)


BAD_BATCHES = {  # id: a batch with one order that fails (on the server, or in Python before it), and why
    "negative-in-the-middle": (["10.00", "-1.00", "3.00"], "-1.00 breaks CHECK (total >= 0)"),
    "negative-first": (["-0.01", "10.00"], "-0.01 breaks CHECK (total >= 0)"),
    "too-big-last": (["10.00", "3.00", "100000000.00"], "100000000.00 does not fit numeric(10, 2)"),
    "not-a-number": (["10.00", "ten"], "'ten' is no number (Decimal refuses it in Python, before the server)"),
    "last-of-1001": (["1.00"] * 1000 + ["-1.00"], "the last of 1001 totals, -1.00, breaks CHECK (total >= 0)"),
}


@pytest.mark.parametrize(("totals", "why"), BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
async def test_a_bad_total_places_nothing_and_keeps_the_callers_work(db_conn, totals, why):
    """Wherever the bad total is, and whatever fails (the server or Python): the error reaches the caller, no order
    of the batch stays, the caller's do."""
    user_id = await create_user(db_conn, "ada@example.com", "Ada")
    await place_order(db_conn, user_id, "5.00")  # the caller's work before the call
    try:
        await place_orders(db_conn, user_id, totals)
    except Exception:  # any error counts (the server's or Python's): what matters is what it leaves
        pass
    else:
        hint = f"{why}, yet place_orders returned normally: the error must raise"
        pytest.fail(hint + ", so the caller knows nothing was placed", pytrace=False)
    assert db_conn.is_in_transaction(), "place_orders ended the caller's transaction: everything it did is gone"
    try:
        totals_now = [row["total"] for row in await db_conn.fetch(USERS_ORDERS, user_id)]
    except asyncpg.InFailedSQLTransactionError:
        hint = "after the failed batch the caller's transaction no longer works"
        pytest.fail(hint + ": the failure must be undone inside place_orders", pytrace=False)
    assert "5.00" in totals_now, "the caller's order, placed before the call, is gone: undo the batch, nothing more"
    assert totals_now == ["5.00"], (
        f"{why}; {len(totals_now) - 1} orders of the failed batch are still there: {totals_now[1:6]}"
        f"{'…' if len(totals_now) > 6 else ''}. Undo the batch on any error"
    )


async def test_two_batches_for_one_user_at_once(db_committed):
    """Another connection places an order for the same user while the batch runs, in every interleaving the
    checker tries: place_orders returns the ids of its own orders, never the other one's."""
    async with db_committed.acquire() as first, db_committed.acquire() as second:
        user_id = await create_user(first, "ada@example.com", "Ada")
        race = Lockstep(A=first, B=second)
        calls = {
            "A": lambda conn: place_orders(conn, user_id, ["10.00", "20.00"]),
            "B": lambda conn: place_order(conn, user_id, "99.00"),
        }
        for which, head_start in race.schedules(2):
            outcome = await race.run(calls, which, head_start)
            for name, error in outcome.raised().items():
                pytest.fail(
                    f"connection {name} raised {type(error).__name__}: {error} ({outcome.timeline()})", pytrace=False
                )
            own = [
                row["id"]
                for row in await first.fetch(
                    "SELECT id FROM orders WHERE user_id = $1 AND total < 99 ORDER BY id", user_id
                )
            ]
            got = outcome.results["A"]
            assert got == own, (
                f"another connection placed an order for the same user meanwhile ({outcome.timeline()}): "
                f"place_orders returned {got}, but its own orders are {own}. Return the ids of the orders this call "
                "placed, not the user's newest ones"
            )
            await first.execute("DELETE FROM orders WHERE user_id = $1", user_id)


async def test_all_or_nothing_outside_a_transaction_too(db_committed):
    """With no transaction open: a good batch is placed, a failing batch leaves none of its orders."""
    async with db_committed.acquire() as conn:
        user_id = await create_user(conn, "ada@example.com", "Ada")
        try:
            await place_orders(conn, user_id, ["1.00", "2.00"])
        except asyncpg.PostgresError as exc:
            hint = f"on a connection with no transaction open, a good batch raised {type(exc).__name__}: {exc}"
            pytest.fail(hint, pytrace=False)
        with pytest.raises(asyncpg.PostgresError):
            await place_orders(conn, user_id, ["10.00", "-1.00"])
        assert not conn.is_in_transaction(), "place_orders left a transaction open on the connection"
        left = [row["total"] for row in await conn.fetch(USERS_ORDERS, user_id)]
        assert left == ["1.00", "2.00"], f"with no transaction around the call, the failed batch left: {left[2:]}"


async def test_a_cancelled_batch_leaves_nothing(db_committed):
    """A batch cancelled while it waits for a lock (the caller's time limit ran out) ends cancelled and leaves none of
    its orders: on a connection with no transaction open, no transaction behind it; inside the caller's transaction,
    the caller's transaction working, with the caller's work in it; the connection usable at once."""
    async with db_committed.acquire() as conn, db_committed.acquire() as holder:
        user_id = await create_user(conn, "ada@example.com", "Ada")
        for in_callers_transaction in (False, True):
            where = "inside the caller's transaction" if in_callers_transaction else "with no transaction open"
            callers = conn.transaction()
            if in_callers_transaction:
                await callers.start()
                await create_user(conn, "caller@example.com", "Caller")  # the caller's work before the call
            async with holder.transaction():  # another transaction holds ada's row: the orders' foreign key waits
                await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
                task = await cancel_while_waiting(place_orders(conn, user_id, ["1.00", "2.00"]), conn, holder)
            if not task.done():
                pytest.fail(f"{where}, a cancelled place_orders had not ended 5 s later", pytrace=False)
            if not task.cancelled():
                error = task.exception()
                how = f"raised {type(error).__name__}: {error}" if error else f"returned {task.result()!r}"
                pytest.fail(
                    f"{where}, place_orders was cancelled but {how}: let the cancellation through", pytrace=False
                )
            try:
                open_now = conn.is_in_transaction()
                callers_user = await conn.fetchval("SELECT count(*) FROM users WHERE email = 'caller@example.com'")
            except (asyncpg.InterfaceError, asyncpg.InFailedSQLTransactionError) as exc:
                hint = f"{where}, after a cancelled place_orders the connection refused the caller's next query ({exc})"
                pytest.fail(hint + ": undo the batch on any exception, a cancellation too", pytrace=False)
            left = await holder.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", user_id)
            if in_callers_transaction:
                await callers.rollback()
            assert open_now == in_callers_transaction, (
                f"{where}, a cancelled place_orders left a transaction open: undo the batch on any exception, a "
                "cancellation too (a BaseException, not an Exception)"
            )
            assert callers_user == int(in_callers_transaction), f"{where}, the caller's own work is gone"
            assert left == 0, f"{where}, a cancelled place_orders left {left} of its orders committed"
            undone = await conn.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", user_id)
            assert undone == 0, f"{where}, a cancelled place_orders left {undone} of its orders"


async def test_locks_only_what_it_writes(db_committed):
    """While the caller's transaction around the batch is still open, other connections go on at once: the same
    user's next order, and a change to the user's earlier order."""
    async with db_committed.acquire() as conn, db_committed.acquire() as other:
        user_id = await create_user(conn, "ada@example.com", "Ada")
        earlier = await place_order(conn, user_id, "5.00")
        async with savepoint(conn):  # the caller's transaction, open while another connection tries
            await place_orders(conn, user_id, ["1.00", "2.00"])
            held_up = await blocked(
                other,
                {
                    "place another order for the same user": (
                        "INSERT INTO orders (user_id, total) VALUES ($1, 1)",
                        user_id,
                    ),
                    "cancel the user's earlier order": (
                        "UPDATE orders SET status = 'cancelled' WHERE id = $1",
                        earlier,
                    ),
                },
            )
        if held_up:
            pytest.fail(
                f"while the caller's transaction is open after place_orders, another connection cannot "
                f"{' or '.join(held_up)}: the batch locks more than the rows it inserts",
                pytrace=False,
            )


# %% [markdown] tags=["hint"] exercise="4.2"
# <details><summary>Hint 1</summary>
#
# `shop.register_with_first_order` above does the same for two statements. How does it make them all or nothing?
# </details>
#
# <details><summary>Hint 2</summary>
#
# Put the whole loop inside one `async with conn.transaction():`. In the caller's transaction it is a savepoint:
# on an error asyncpg rolls back to it and re-raises.
# </details>

# %% [markdown]
# Stuck? Open the hints under a checker one at a time. The model answers are not in this notebook: try first, then
# ask your instructor or compare with a classmate.

# %%
await conn.close()

# %% [markdown]
# ## Key points
#
# - PostgreSQL has one transaction per connection. A nested `conn.transaction()` is a `SAVEPOINT`;
#   leaving it with an exception sends `ROLLBACK TO` and undoes only the inner block.
# - After an error without a savepoint the whole transaction is aborted: catching the exception in
#   Python does not help, every later statement raises `InFailedSQLTransactionError`.
# - `BEGIN` inside a transaction is a `WARNING` and changes nothing. Do not start transactions with
#   raw SQL under asyncpg: `conn.transaction()` then refuses to run.
# - Code that manages its own transaction is tested with the normal `db_conn` fixture. Test the
#   failure path with `pytest.raises`, and assert both what was undone and what must survive.


# %% [markdown]
# ## Where you stand
#
# Your checker runs in this notebook, as recorded (never your code); `show()` without a number, or
# `python3 course.py progress`, shows the whole course.

# %% tags=["progress"]
from coursedb.progress import show

show("04")
