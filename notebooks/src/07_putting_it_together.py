# ---
# jupyter:
#   course:
#     # The one notebook above the room's 4: its `pytest -n 2` demo adds two owners for a few seconds,
#     # each with a liveness session and a db_pool of 2 (2 + 2 x 3).
#     connections: 8
# ---

# %% [markdown]
# # 07 · Putting it together
#
# **You will learn**
# - how to build a test suite for a real module: fixtures layered on `db_conn`, factories, `parametrize`;
# - how to apply migrations from async code, and why `asyncio.run()` inside a running loop fails;
# - how `pytest-xdist` runs tests in parallel with a database per worker;
# - how CI tests the notebooks themselves with nbval.
#
# *About 55 minutes.*

# %% [markdown]
# ## The idea
#
# A good database test suite is a stack of layers, each made once at the cheapest level that keeps tests apart:
#
# | layer | made | by |
# |---|---|---|
# | PostgreSQL server | once per machine | `coursedb` (embedded, Docker or your URL) |
# | a database | once per process: each notebook kernel, each pytest-xdist worker | `coursedb.database_url()`, cloned from a template |
# | the schema | once, in the template | migrations, applied async-safely |
# | a transaction | once per test | the `db_conn` fixture, always rolled back |
# | the test's data | per test | your fixtures and factories, on top of `db_conn` |
#
# This notebook walks up that stack with the course's example app, `shop`.

# %%
from coursedb.notebook import setup

db_url = setup()

# %%
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

import coursedb
import shop
from coursedb.paths import course_root

REPO = course_root()  # the course's repository (tests/, course.py), wherever this notebook runs
shop.__all__

# %% [markdown]
# ## Fixtures in layers, and a factory
#
# Tests of `shop` need a user, and most need orders. Instead of repeating the inserts, build small
# fixtures on top of each other. Each one asks for the layer below by name:
#
# - `user` needs `db_conn`: one user, inside the test's transaction;
# - `make_order` needs `db_conn` and `user`: a **factory**. It returns a function, so each test places
#   exactly the orders it is about, with the totals and statuses it needs.


# %%
@pytest.fixture
async def user(db_conn) -> int:
    """One user, created in the test's transaction (so rolled back with it)."""
    return await shop.create_user(db_conn, "ada@example.com", "Ada")


@pytest.fixture
def make_order(db_conn, user):
    """Factory: `await make_order("9.99", status="paid")` places an order for `user` (or for `user_id`)."""

    async def make(total: str = "10.00", status: str = "pending", user_id: int | None = None) -> int:
        return await shop.place_order(db_conn, user if user_id is None else user_id, total, status)

    return make


# %% [markdown]
# Now the tests read like the rules they check. `parametrize` turns one test into one test per case,
# each with its own id and its own transaction (`-rA` lists every test that ran, with its id):

# %%
# %%ipytest -rA


@pytest.mark.parametrize(
    ("status", "counted"),
    [("pending", True), ("paid", True), ("shipped", True), ("cancelled", False)],
)
async def test_order_total_counts_every_status_but_cancelled(db_conn, user, make_order, status, counted):
    await make_order("10.00")
    await make_order("2.50", status=status)
    assert await shop.order_total(db_conn, user) == (Decimal("12.50") if counted else Decimal("10.00"))


async def test_order_total_is_per_user(db_conn, user, make_order):
    other = await shop.create_user(db_conn, "bo@example.com", "Bo")
    await make_order("10.00")
    await make_order("99.00", user_id=other)
    assert await shop.order_total(db_conn, user) == Decimal("10.00")


async def test_a_user_without_orders_totals_zero(db_conn, user):
    assert await shop.order_total(db_conn, user) == 0


@pytest.mark.parametrize("email", ["ADA@example.com", "ada@EXAMPLE.COM", "Ada@Example.Com"])
async def test_emails_are_unique_whatever_their_case(db_conn, user, email):
    with pytest.raises(shop.EmailTaken):
        async with db_conn.transaction():  # a savepoint: the failed INSERT doesn't spoil the test's transaction
            await shop.create_user(db_conn, email, "Ada again")


# %% [markdown]
# Nine tests, and none of them sees another's rows: every one starts from the same empty tables
# (the `user` fixture inserts `ada@example.com` nine times without a `UniqueViolation`).

# %% [markdown]
# ### Pitfall: a wider scope on top of a narrower one
#
# Creating the user once for the whole session sounds faster. But a session-scoped fixture
# outlives `db_conn`'s transaction, which is function-scoped, so pytest refuses to build it:

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


@pytest.fixture(scope="session")
async def shared_user(db_conn) -> int:
    return await shop.create_user(db_conn, "shared@example.com", "Shared")


async def test_with_a_shared_user(db_conn, shared_user):
    assert await shop.order_total(db_conn, shared_user) == 0


# %% [markdown]
# `ScopeMismatch`: a fixture may only use fixtures that live at least as long as it does. If you
# really need shared rows, make them part of the template (the schema layer), or commit them in a
# session-scoped fixture built on `db_pool` that deletes them at teardown. Per-test data in per-test
# fixtures is simpler, and the rollback cleans it up for free.

# %% [markdown]
# ## Migrations, async-safely
#
# The course database is built by **migrations**: ordered SQL files applied once each
# (`coursedb/migrations/*.sql`). A popular article runs Alembic migrations inside an async pytest fixture:
#
# ```python
# async with pool.acquire() as conn:
#     command.upgrade(alembic_cfg, "head")   # don't: see below
# ```
#
# Two things are wrong. `conn` is never used: Alembic opens its own connection, to whatever URL `alembic.ini`
# names, which is not necessarily the test database. And `command.upgrade` is a plain sync function. With Alembic's async template, its `env.py` ends in
# `asyncio.run(run_async_migrations())`: it starts an event loop of its own. Inside an async fixture
# an event loop is already running, and `asyncio.run()` refuses to start a second one in the same thread.
#
# We don't need Alembic to see it. `apply_migrations` applies the course's migrations into a schema of
# our choice; `upgrade_head` wraps it exactly the way Alembic's `env.py` does:


# %%
async def apply_migrations(schema: str) -> list[str]:
    """Apply the course migrations into `schema` on a connection of its own; return what was applied."""
    conn = await asyncpg.connect(db_url, server_settings={"search_path": schema})
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        return await coursedb.migrate(conn)
    finally:
        await conn.close()


def upgrade_head(schema: str) -> list[str]:
    """Sync outside, asyncio.run() inside: the shape of Alembic's command.upgrade with the async env.py."""
    migration = apply_migrations(schema)
    try:
        return asyncio.run(migration)
    finally:
        migration.close()  # if asyncio.run refused, close the coroutine (else: "never awaited" warning)


conn = await asyncpg.connect(db_url)
await conn.execute("DROP SCHEMA IF EXISTS migration_demo CASCADE")

# %% [markdown]
# A notebook cell runs inside the kernel's event loop, just like an async fixture runs inside pytest-asyncio's:

# %% tags=["raises-exception"]
upgrade_head("migration_demo")

# %% [markdown]
# The same happens inside pytest: async fixtures and async tests run in pytest-asyncio's loop. A test
# can pin the trap down (and would fail the day the behaviour changed):

# %%
# %%ipytest


async def test_a_sync_upgrade_inside_a_running_loop_fails():
    with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
        upgrade_head("migration_demo")  # what command.upgrade(alembic_cfg, "head") does in an async fixture


# %% [markdown]
# Three ways that work:
#
# 1. **Run the sync function in a worker thread.** A thread has no running loop, so `asyncio.run()` is allowed there,
#    and `asyncio.to_thread` lets the event loop wait for it without blocking. In a fixture that is
#    `await asyncio.to_thread(command.upgrade, alembic_cfg, "head")`; here, with our stand-in:

# %%
await asyncio.to_thread(upgrade_head, "migration_demo")

# %% [markdown]
# 2. **Stay async all the way.** If the migration code is yours, await it on the loop you are on. `coursedb.migrate(conn)`
#    does exactly that with asyncpg: each file in a transaction of its own, each recorded in `schema_migrations`.
#    Applying again finds nothing left to do:

# %%
await apply_migrations("migration_demo")

# %%
await conn.fetch("SELECT name FROM migration_demo.schema_migrations ORDER BY name")

# %% [markdown]
# 3. **With SQLAlchemy and Alembic, share an async connection.** Alembic's cookbook recipe: `env.py` uses a connection
#    passed in `config.attributes` when there is one (and only calls `asyncio.run` when there isn't), and the fixture
#    hands the sync Alembic command to `run_sync`, which runs it on the async engine's connection:
#
# ```python
# def run_upgrade(connection, cfg):
#     cfg.attributes["connection"] = connection
#     command.upgrade(cfg, "head")
#
# async with engine.begin() as connection:          # engine = create_async_engine("postgresql+asyncpg://...")
#     await connection.run_sync(run_upgrade, alembic_cfg)
# ```
#
# (Not run here: the course doesn't install SQLAlchemy or Alembic. The failure and fixes 1 and 2 above are the same mechanism.)

# %%
await conn.execute("DROP SCHEMA IF EXISTS migration_demo CASCADE")

# %% [markdown]
# Migrations deserve a test of their own: from an empty schema they must build every table, and a
# second run must change nothing. DDL is transactional in PostgreSQL, so this runs inside `db_conn`'s
# transaction too; `SET LOCAL` points it at an empty schema until the rollback:

# %%
# %%ipytest

from coursedb.migrate import migration_files


async def test_migrations_build_the_schema_from_nothing(db_conn):
    await db_conn.execute("CREATE SCHEMA empty")
    await db_conn.execute("SET LOCAL search_path TO empty")
    assert await coursedb.migrate(db_conn) == [name for name, _ in migration_files()]
    assert await coursedb.migrate(db_conn) == []  # idempotent
    tables = await db_conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'empty' ORDER BY tablename")
    assert [t["tablename"] for t in tables] == ["events", "orders", "schema_migrations", "users"]


# %% [markdown]
# ## Parallel tests: a database per worker
#
# `pytest -n 2` (from pytest-xdist) starts two **worker processes** and hands each a share of the tests.
# Each worker is a full pytest session: session fixtures such as `db_url` and `db_pool` run once *per worker*.
# Two workers writing to the same tables at once would see each other's committed rows, so each needs a
# database of its own. `coursedb.database_url()` gives one to every process, so `db_url` already does the right thing.
#
# Let's check, not trust. A tiny pytest plugin records, before every test, which worker runs it and
# which database its connection is on. Then we run the repository's real `tests/reference/test_shop.py` on two workers:

# %%
PROBE = """
import os

import pytest


@pytest.fixture(autouse=True)
async def record_database(db_pool):
    database = await db_pool.fetchval("SELECT current_database()")
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + " " + database + "\\n")
"""

probe_dir = Path(tempfile.mkdtemp(prefix="xdist_probe_"))
(probe_dir / "probe.py").write_text(PROBE)
log_file = probe_dir / "databases.log"

# The subprocess is a pytest run of its own: drop xdist's variables in case this notebook runs under xdist (CI).
env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
env.update(PYTHONPATH=str(probe_dir), PROBE_LOG=str(log_file))
command = [sys.executable, "-m", "pytest", "-n", "2", "-p", "probe", "-q", "--color=no", "tests/reference/test_shop.py"]
command += ["-p", "no:nbval"]  # no notebooks in this run: spare each worker the import of Jupyter's machinery
run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
summary = run.stdout.strip().splitlines()[-1]  # e.g. "7 passed in 4.2s"
print("pytest exit code:", run.returncode, "(0: every test passed)")
if run.returncode != 0:  # show why, instead of a bare number
    print(run.stdout[-3000:], run.stderr[-2000:], sep="\n")
records = [line.split() for line in log_file.read_text().splitlines()]
shutil.rmtree(probe_dir)  # what the probe wrote is in `records` now

# %%
databases_of = {}
for worker, database in records:
    databases_of.setdefault(worker, set()).add(database)
my_database = db_url.rsplit("/", 1)[1].split("?")[0]
every_database = set().union(*databases_of.values())

print("every test recorded:       ", f"{len(records)} passed" in summary)
print("workers:                   ", sorted(databases_of))
print("databases per worker:      ", [len(databases_of[w]) for w in sorted(databases_of)])
print("distinct databases:        ", sorted(every_database))
print("this notebook's among them:", my_database in every_database)

# %% [markdown]
# Every test on a worker used that worker's database, and the two workers never shared one; nor did they
# touch this notebook's. (A name is `coursedb_<pid>_<random>`, the owner's process id included; the course's
# sanitize rules show them as `coursedb_PID_XXXXXX`, because they change on every run.)
#
# Did the workers clean up? Each worker drops its database when its process exits:

# %%
left_over = await conn.fetchval(
    "SELECT count(*) FROM pg_database WHERE datname = ANY($1::text[])", sorted(every_database)
)
print("worker databases still on the server:", left_over)

# %% [markdown]
# The course's full command runs like this, with one more detail: `--dist loadfile` sends all tests of one
# file (or one notebook) to the same worker, because a notebook's cells share one kernel and must run in order.

# %% [markdown]
# ## The notebooks are tests too: nbval
#
# Every notebook in this course runs in CI with [nbval](https://nbval.readthedocs.io):
# `pytest --nbval` opens a fresh kernel per notebook, runs the cells in order, and compares each cell's
# output with the output **saved in the `.ipynb`**. A cell whose output changed fails, like a failed assert.
# Here is the course's exact command, read from `course.py`:

# %%
import importlib.util

spec = importlib.util.spec_from_file_location("course", REPO / "course.py")
course = importlib.util.module_from_spec(spec)
spec.loader.exec_module(course)
print("python -m pytest", " ".join(course.TEST_ARGS))

# %% [markdown]
# The pieces that make a strict comparison workable:
#
# | piece | what it does |
# |---|---|
# | `--nbval` | every code cell becomes a test item: run it, compare its outputs |
# | `--nbval-sanitize-with notebooks/sanitize.cfg` | regexes applied to both outputs first: only the volatile *part* is replaced |
# | the `raises-exception` cell tag | this cell is *meant* to fail (the pitfalls above): an error is expected, the output still compared |
# | `--dist loadfile` | one notebook per worker, cells in order, one kernel |
# | no timings, no ordering without `ORDER BY` | the output must be the same on every machine and PostgreSQL version |
#
# A sanitize rule at work: two runs of the same measurement differ, sanitized they are equal. This uses
# the `[milliseconds]` rule of the real `sanitize.cfg`:

# %%
import configparser
import re
import time

rules = configparser.ConfigParser()
rules.read(REPO / "notebooks" / "sanitize.cfg")
milliseconds = rules["milliseconds"]


def sanitize(text: str) -> str:
    return re.sub(milliseconds["regex"], milliseconds["replace"], text)


outputs = []
for _ in range(2):
    started = time.perf_counter()
    await conn.fetchval("SELECT count(*) FROM users")
    outputs.append(f"query took {(time.perf_counter() - started) * 1000} ms")

print("raw outputs equal:      ", outputs[0] == outputs[1])
print("sanitized outputs equal:", sanitize(outputs[0]) == sanitize(outputs[1]))
print("what nbval compares:    ", sanitize(outputs[0]))

# %% [markdown]
# Rules to keep a notebook green in CI:
#
# - print what is **stable**: counts, booleans, plan node types, ratios in a sanitizable format; never raw timings;
# - sort whatever you print (`ORDER BY`, `sorted`);
# - make every cell safe to run twice: temp tables, `IF NOT EXISTS`, clean up committed rows and schemas;
# - tag intended failures `raises-exception`, and nothing else;
# - check locally with `python -m pytest --nbval --nbval-sanitize-with notebooks/sanitize.cfg notebooks/07_*.ipynb`.
#
# The exercises are checked twice by `tests/course/test_exercises.py`: the starting cell must fail its checker with a
# hint, and the model answer (a cell tagged `solution` in `notebooks/src/`, left out of every notebook you open) must
# pass it.

# %% [markdown]
# ## Exercise 7.1: cancel an order (core)
#
# Write `cancel_order(conn, order_id)`. A **pending** or **paid** order becomes `cancelled`, and the function returns
# `True`. A shipped order, an order already cancelled, or an id that doesn't exist is left alone, and it returns `False`.
#
# Two requests may cancel the same order at the same moment, each on a connection of its own: exactly one of them may
# return `True`. The checker tries that too, statement by statement in several orders, and it also cancels an order
# that another transaction holds at that moment: your cancel must wait for it, then decide.


# %% tags=["exercise"] exercise="7.1"
# Exercise 7.1: cancel an order
async def cancel_order(conn, order_id: int) -> bool:
    raise NotImplementedError("Exercise 7.1: cancel a pending or paid order and say whether you did, even under a race")


# %% tags=["solution"] exercise="7.1"
async def cancel_order(conn, order_id: int) -> bool:
    # One statement: the row is checked and changed together, so two concurrent cancels
    # can't both see 'pending' and both return True (the second waits, then matches nothing).
    cancelled = await conn.fetchval(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
        order_id,
    )
    return cancelled is not None


# %% tags=["checker", "raises-exception"] exercise="7.1"
# %%ipytest --exercise 7.1
import contextlib

from hypothesis import example, given
from hypothesis import strategies as st

from coursedb.checks import blocked, cancel_if_waiting, cancelled_cleanly, examples, result_of, savepoint, until_idle
from coursedb.lockstep import Lockstep, in_transaction

FAR = 2_147_483_000  # ids far from 1, next to the largest an INTEGER column holds
ADD_ORDER = "INSERT INTO orders (id, user_id, total, status) VALUES ($1, $2, $3, $4)"
STATUS = "SELECT status::text FROM orders WHERE id = $1"
HOLD = 0.05  # seconds another transaction keeps the order while cancel_order waits for it: a limit of the call's
# own need not run out in that time (lockstep reads them: the server's, asyncpg's timeout=, asyncio's)
ORDER_ID = st.integers(-(2**31), 2**31 - 1)  # any id an INTEGER column holds
STATUSES = ["pending", "paid", "shipped", "cancelled"]


async def cancelled(conn, order_id: int, what: str) -> bool:
    result = await cancel_order(conn, order_id)
    assert type(result) is bool, f"cancel_order on {what} returned {result!r}: return True or False"
    return result


@pytest.mark.parametrize("status", ["pending", "paid"])
async def test_cancels_a_pending_or_paid_order(db_conn, user, status):
    """A pending or paid order becomes cancelled, and cancel_order returns True."""
    await db_conn.execute(ADD_ORDER, FAR, user, Decimal("0.01"), status)
    assert await cancelled(db_conn, FAR, f"a {status} order") is True, (
        f"a {status} order can be cancelled: expected True"
    )
    now = await db_conn.fetchval(STATUS, FAR)
    assert now == "cancelled", f"cancel_order returned True, but the {status} order is now {now}"


@pytest.mark.parametrize("status", ["shipped", "cancelled", None])
async def test_leaves_other_orders_alone(db_conn, user, status):
    """A shipped order, a cancelled one or an id no order has: cancel_order changes nothing and returns False."""
    what = "an id no order has" if status is None else f"a {status} order"
    if status is not None:
        await db_conn.execute(ADD_ORDER, FAR, user, Decimal("10.00"), status)
    result = await cancelled(db_conn, FAR, what)
    assert result is False, f"cancel_order on {what} returned {result}, expected False"
    now = await db_conn.fetchval(STATUS, FAR)
    assert now == status, f"cancel_order on {what} left it {now}, expected {status}"


async def test_touches_only_that_order(db_conn, user):
    """Cancelling one order leaves every other order as it was, its neighbours by id included."""
    for offset, total in enumerate(["5.00", "7.00", "9.00"]):
        await db_conn.execute(ADD_ORDER, FAR + offset, user, Decimal(total), "pending")
    await cancel_order(db_conn, FAR + 1)
    rows = await db_conn.fetch("SELECT id, status::text FROM orders ORDER BY id")
    statuses = {row["id"] - FAR: row["status"] for row in rows}
    assert statuses == {0: "pending", 1: "cancelled", 2: "pending"}, f"after cancelling order +1 of three: {statuses}"


async def a_new_order(conn) -> int:
    """A committed pending order of a new user."""
    user_id = await shop.create_user(conn, f"buyer{await conn.fetchval('SELECT count(*) FROM users')}@example.com", "B")
    return await shop.place_order(conn, user_id, "10.00")


def cancelling(order_id: int, wrap=None):
    """A call for the lockstep driver: cancel_order on its connection, in a transaction of its own if `wrap` says so."""

    async def call(conn):
        return await cancel_order(conn, order_id)

    return wrap(call) if wrap else call


async def test_two_concurrent_cancels_cancel_once(db_committed):
    """Two requests cancel one order at the same moment, on two connections, their statements interleaved in every
    order the checker tries (with and without a transaction around them): exactly one returns True."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        race = Lockstep(A=a, B=b)
        for wrap_a, wrap_b in [(None, None), (in_transaction, None), (in_transaction, in_transaction)]:
            for first, head_start in race.schedules():
                order_id = await a_new_order(a)
                calls = {"A": cancelling(order_id, wrap_a), "B": cancelling(order_id, wrap_b)}
                outcome = await race.run(calls, first, head_start)
                if outcome.raised():
                    error = next(iter(outcome.raised().values()))
                    pytest.fail(f"cancel_order raised {error!r} in a race ({outcome.timeline()})", pytrace=False)
                results = [outcome.results["A"], outcome.results["B"]]
                if results == [True, True]:
                    pytest.fail(
                        "two concurrent cancels of one pending order both returned True; their statements ran in this "
                        f"order: {outcome.timeline()}. Between one's check and its change the other cancelled the "
                        "order: check and change in one step",
                        pytrace=False,
                    )
                assert results.count(True) == 1, (
                    f"two concurrent cancels of one pending order returned {results} ({outcome.timeline()}): "
                    "exactly one must succeed"
                )
                for conn in (a, b):
                    assert not conn.is_in_transaction(), "cancel_order left its connection inside a transaction"


@pytest.mark.parametrize(("change", "expected"), [("total = total + 1", True), ("status = 'shipped'", False)])
async def test_a_cancel_waits_for_whoever_holds_the_order(db_committed, change, expected):
    """While another transaction holds the order (it changes it and commits later), cancel_order waits for it, with no
    time limit of its own (the holder may take longer than any), then decides on what that transaction committed: it
    neither gives up nor goes by what it read before."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await a_new_order(a)

        async def holder(conn):
            await conn.execute(f"UPDATE orders SET {change} WHERE id = $1", order_id)

        calls = {"A": in_transaction(holder), "B": cancelling(order_id)}
        outcome = await Lockstep(A=a, B=b).run(calls, first="A", hold=HOLD)  # A commits once B has waited HOLD s
        result = outcome.results["B"]
        if isinstance(result, BaseException):
            pytest.fail(f"cancel_order raised {result!r} ({outcome.timeline()})", pytrace=False)
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
        assert result is expected, (
            f"another transaction held the order and set {change}; then cancel_order returned {result}, expected "
            f"{expected} ({outcome.timeline()})"
        )


async def test_a_cancel_cancelled_while_it_waits_changes_nothing(db_committed):
    """If its caller cancels cancel_order while it waits for an order another transaction holds (a request's time
    limit ran out), the call ends cancelled, leaves its connection ready for the next query at once (no transaction,
    no statement still running) and changes nothing, even once the holder is done."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await a_new_order(a)
        try:
            async with a.transaction():
                await a.execute("UPDATE orders SET total = total + 1 WHERE id = $1", order_id)
                await cancelled_cleanly(cancel_order(b, order_id), b, a, unchanged=lambda: b.fetchval(STATUS, order_id))
        finally:  # after the holder's transaction: a statement the cancelled call left running can end now
            await until_idle(b)
        status = await a.fetchval(STATUS, order_id)
        assert status == "pending", (
            f"cancel_order was cancelled while it waited for the order, yet once the holder committed the order was "
            f"{status}: a cancelled call changes nothing"
        )


PROBES = {  # what other requests do meanwhile, none of it to the order being cancelled: (SQL, which id it takes)
    "place another order for the same user": ("INSERT INTO orders (user_id, total) VALUES ($1, 1)", "user"),
    "change the user's row": ("UPDATE users SET name = name || '' WHERE id = $1", "user"),
    "change another order of that user": ("UPDATE orders SET total = total + 1 WHERE id = $1", "other"),
}


async def a_user_with_two_orders(conn, status: str) -> tuple[int, int, int]:
    """Committed: a new user, the order to cancel (`status`), another pending order of the same user."""
    user_id = await shop.create_user(conn, f"two{await conn.fetchval('SELECT count(*) FROM users')}@example.com", "T")
    return user_id, await shop.place_order(conn, user_id, "10.00", status), await shop.place_order(conn, user_id, "5")


async def test_locks_only_the_order_it_cancels(db_committed):
    """cancel_order locks only the order it cancels, in both orders, several rounds: while the caller's transaction
    around it is still open, other transactions can at once place an order for the same user, change the user's row
    and change the user's other orders; and while other transactions do those things, cancel_order does not wait."""
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        for status in ("pending", "paid"):
            user_id, order_id, other = await a_user_with_two_orders(a, status)
            async with savepoint(a):  # the caller's transaction, open while others try
                await cancelled(a, order_id, f"a {status} order")
                ids = {"user": user_id, "other": other}
                held_up = await blocked(b, {what: (sql, ids[key]) for what, (sql, key) in PROBES.items()})
            if held_up:
                pytest.fail(
                    f"after cancel_order, while the caller's transaction was still open, another transaction could not "
                    f"{' nor '.join(held_up)} (it waited for a lock cancel_order took): lock only the order you cancel",
                    pytrace=False,
                )
            user_id, order_id, other = await a_user_with_two_orders(a, status)
            async with savepoint(b):  # another request is busy with the same user, and not yet done
                for sql, key in PROBES.values():
                    await b.execute(sql, {"user": user_id, "other": other}[key])
                task, waited = await cancel_if_waiting(cancel_order(a, order_id), a, b)
            if waited:
                pytest.fail(
                    f"cancel_order of a {status} order waited for another transaction that had placed an order for the "
                    "same user and changed the user's row and another of their orders, but not this order: lock only "
                    "the order you cancel",
                    pytrace=False,
                )
            result = await result_of(task, f"cancel_order of a {status} order")
            assert result is True, f"cancel_order of a {status} order returned {result!r}, expected True"


@examples(10)
@given(
    orders=st.lists(st.tuples(ORDER_ID, st.sampled_from(STATUSES)), max_size=5, unique_by=lambda order: order[0]),
    which=st.integers(0, 5),
    absent=ORDER_ID,
)
@example(orders=[(-7, "pending"), (0, "paid")], which=0, absent=1)
@example(orders=[(0, "paid"), (2**31 - 1, "pending")], which=0, absent=-(2**31))
@example(orders=[(-(2**31), "paid"), (1, "shipped")], which=0, absent=2)
async def test_any_orders_any_id(db_conn, user, orders, which, absent):
    """For any orders (ids anywhere an INTEGER holds: negative, 0, the largest; any statuses) and any id: True and that
    order cancelled if it is pending or paid; else False; every other order as it was."""
    async with savepoint(db_conn):
        await db_conn.executemany(
            ADD_ORDER, [(order_id, user, Decimal("10.00"), status) for order_id, status in orders]
        )
        target = orders[which][0] if which < len(orders) else absent
        before = dict(orders)
        result = await cancelled(db_conn, target, f"order {target} of {before}")
        expected = before.get(target) in ("pending", "paid")
        after = {row["id"]: row["status"] for row in await db_conn.fetch("SELECT id, status::text FROM orders")}
        wanted = {**before, target: "cancelled"} if expected else before
        assert (result, after) == (expected, wanted), (
            f"orders (id: status) {before}; cancel_order(conn, {target}) returned {result} and left {after}, expected "
            f"{expected} and {wanted}"
        )


async def test_errors_reach_the_caller(db_conn, user):
    """An error reaches the caller (here: the caller's transaction has already failed): cancel_order raises it rather
    than answering False, which would say the order cannot be cancelled."""
    await db_conn.execute(ADD_ORDER, FAR, user, Decimal("10.00"), "pending")
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


# %% [markdown] tags=["hint"] exercise="7.1"
# <details><summary>Hint 1</summary>
#
# Read the status, then update: between the two, another request can cancel the same order, and both report success.
# The checker's concurrent tests do exactly that.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Let the `UPDATE` itself decide: its `WHERE` can test the status too, so the row is checked and changed in one
# statement. A concurrent `UPDATE` of the same row waits for yours, then re-checks the `WHERE`.
# </details>
#
# <details><summary>Hint 3</summary>
#
# `UPDATE … RETURNING id` returns a row only when one was changed: `fetchval` gives `None` otherwise.
# </details>


# %% [markdown]
# ## Exercise 7.2: a factory fixture of your own (stretch)
#
# Write a fixture `make_user` in the style of `make_order`: `await make_user()` creates a new user in the test's
# transaction and returns its id. Every call gives a different user, however many the test makes (hundreds) or
# deletes; `await make_user(email="grace@example.com")` uses that email as it is given, and a test may give it any
# email, even `""` or one like those `make_user()` makes itself.


# %% tags=["exercise"] exercise="7.2"
# Exercise 7.2: a factory fixture
@pytest.fixture
def make_user(db_conn):
    raise NotImplementedError("Exercise 7.2: each call of make_user() makes one more user in the test's transaction")


# %% tags=["solution"] exercise="7.2"
import uuid


@pytest.fixture
def make_user(db_conn):
    async def make(email: str | None = None) -> int:
        if email is None:  # only a missing email is made up: "" is an email a test may mean
            # A whole uuid: never an email a test writes by hand (user1@… is one), no count to get wrong after a delete.
            email = f"user-{uuid.uuid4().hex}@example.com"
        return await shop.create_user(db_conn, email, "User")

    return make


# %% tags=["checker", "raises-exception"] exercise="7.2"
# %%ipytest --exercise 7.2
import itertools
import os
import random
import re
from collections.abc import Callable

from hypothesis import example, given
from hypothesis import strategies as st

from coursedb.checks import examples, savepoint

MANY = 500  # users one test makes


async def made(make_user, db_conn, **email) -> int:
    assert callable(make_user), (
        f"the make_user fixture gave the test {make_user!r}, which is not callable: a factory fixture returns a "
        "function that makes users"
    )
    try:
        user_id = await make_user(**email)
    except shop.EmailTaken as exc:
        taken = exc
    else:
        taken = None
    if taken is not None:
        pytest.fail(
            f"a new user could not be made, {taken} is taken: give every user an email of its own", pytrace=False
        )
    assert type(user_id) is int, f"make_user returned {user_id!r}: return the new user's id"
    exists = await db_conn.fetchval("SELECT count(*) FROM users WHERE id = $1", user_id)
    assert exists == 1, f"make_user returned {user_id}, but the test's transaction has no user with that id"
    return user_id


async def test_each_call_makes_a_new_user(db_conn, make_user):
    """Every call makes one more user, in the test's transaction, and returns that user's id."""
    ids = [await made(make_user, db_conn) for _ in range(5)]
    assert len(set(ids)) == 5, f"five calls returned the ids {ids}: each call makes a new user"
    count = await db_conn.fetchval("SELECT count(*) FROM users")
    assert count == 5, f"five calls to make_user left {count} users in the table"


def few_random_bytes() -> Callable[[int], bytes]:
    """A stand-in for os.urandom: values a random source may well give (any value is possible), chosen so that they
    differ only in two bytes far apart: 7 bytes or more taken whole (a uuid4, token_hex(8)) never repeat within 65536
    calls; any 4 bytes of them (part of a uuid), or fewer than 7 bytes asked for at once, repeat within 257."""
    calls = itertools.count(1)

    def urandom(size: int) -> bytes:
        call, chosen = next(calls), bytearray(b"\xa5" * size)
        if size >= 7:
            chosen[size // 2 - 3], chosen[size // 2 + 2] = call % 256, call // 256 % 256
        elif size:
            chosen[size // 2] = call % 256
        return bytes(chosen)

    return urandom


async def test_hundreds_of_users_in_one_test(db_conn, make_user, monkeypatch):
    """Hundreds of calls in one test each make a new user, whatever values the random sources give: emails that differ
    only by chance (a random number, part of a uuid, a few random bytes) collide sooner or later."""
    random.seed(MANY)  # the same "random" emails on every run, so the verdict never changes
    urandom = few_random_bytes()  # and the OS's randomness too (uuid4, secrets)
    monkeypatch.setattr(os, "urandom", urandom)
    monkeypatch.setattr(random, "_urandom", urandom)
    assert callable(make_user), f"the make_user fixture gave the test {make_user!r}: a function that makes users"
    ids = set()
    for call in range(1, MANY + 1):
        try:
            ids.add(await make_user())
        except shop.EmailTaken as taken:
            pytest.fail(
                f"call {call} of {MANY} to make_user() tried {taken}, which an earlier call had made: give every user "
                "an email of its own, not one that differs by chance (the checker's random source gave values that "
                "differ in two bytes: an email with too few random bits repeats; use a whole uuid4, or a counter "
                "that skips taken emails)",
                pytrace=False,
            )
    assert len(ids) == MANY, f"{MANY} calls to make_user() returned {len(ids)} different ids"


async def test_a_reseeded_random_changes_nothing(db_conn, make_user):
    """Tests reseed Python's global random generator for data of their own (random.seed; Hypothesis does it for every
    example): make_user() still makes a new user after each reseed."""
    for _ in range(3):
        random.seed(7)
        await made(make_user, db_conn)


def look_alikes(email: str) -> list[str]:
    """Emails like `email` with one of its numbers counted up: what a counter would make next."""
    found = []
    for number in re.finditer(r"\d+", email):
        for step in (1, 2, 3):
            bigger = str(int(number.group()) + step).zfill(len(number.group()))
            found.append(email[: number.start()] + bigger + email[number.end() :])
    return found[:12]


async def test_emails_the_test_chose_are_left_to_it(db_conn, make_user):
    """make_user() never makes an email the test already gave make_user(email=...), even one like those it makes itself
    (user2@… after user1@…)."""
    first = await made(make_user, db_conn)
    email = await db_conn.fetchval("SELECT email FROM users WHERE id = $1", first)
    chosen = look_alikes(email)
    for other in chosen:
        await made(make_user, db_conn, email=other)
    for _ in range(len(chosen) + 1):
        try:
            await make_user()
        except shop.EmailTaken as taken:
            pytest.fail(
                f"make_user() made {email}, then the test made users with the emails {chosen}; then make_user() tried "
                f"{taken}, which the test had chosen: make emails no test would write (a uuid), or skip taken ones",
                pytrace=False,
            )


async def test_new_users_after_some_were_deleted(db_conn, make_user):
    """A test may delete users it made: later calls still make new users (ids and emails are not a count)."""
    ids = [await made(make_user, db_conn) for _ in range(3)]
    await db_conn.execute("DELETE FROM users WHERE id = $1", ids[1])
    later = [await made(make_user, db_conn) for _ in range(2)]
    assert len(set(ids + later)) == 5, f"ids made before and after a delete: {ids} then {later}"


async def test_made_users_stay_in_the_tests_transaction(db_conn, db_pool, make_user):
    """Users made by make_user are rolled back with the test: no other connection ever sees them."""
    try:
        await make_user(email="only-in-this-test@example.com")
    finally:
        async with db_pool.acquire() as other:
            visible = await other.fetchval("SELECT count(*) FROM users")
            if visible:  # committed rows would break every later test
                await other.execute("DELETE FROM orders; DELETE FROM users")
    assert visible == 0, (
        f"{visible} user(s) visible to another connection: make_user committed them, and they would outlive the test"
    )


@examples(15)
@given(email=st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=30))
@example(email="ZOË.ωmega@Example.com")
@example(email="")
@example(email=" ada@example.com\n")
@example(email="no at sign")
async def test_uses_the_email_it_is_given(db_conn, make_user, email):
    """make_user(email=X) makes one user whose email is what shop.create_user stores for X, for any text X (empty,
    whitespace, no '@', any case of any script), also between users made with the default one."""
    async with savepoint(db_conn):
        await shop.create_user(db_conn, email, "Reference")
        stored = await db_conn.fetchval("SELECT email FROM users")
    async with savepoint(db_conn):
        await made(make_user, db_conn)
        user_id = await made(make_user, db_conn, email=email)
        got = await db_conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
        await made(make_user, db_conn)
    assert got == stored, (
        f"make_user(email={email!r}) made a user with the email {got!r}, but shop.create_user stores {email!r} as "
        f"{stored!r} (the server lower-cases it: in this database only ASCII letters): pass the email on as it is given"
    )


# %% [markdown] tags=["hint"] exercise="7.2"
# <details><summary>Hint 1</summary>
#
# `make_order` above is a fixture that *returns an `async def`*. The test calls that function as often as it likes.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Build on `db_conn` (so the rollback removes the users) and make each default email unique without counting:
# `f"user-{uuid.uuid4().hex}@example.com"`. A counter's `user2@example.com` is an email a test may well choose itself.
# </details>

# %% [markdown]
# Stuck? Open the hints under a checker one at a time. The model answers are not in this notebook: try first, then
# ask your instructor or compare with a classmate.

# %%
await conn.close()

# %% [markdown]
# ## Key points
#
# - Layer fixtures: `db_conn` → `user` → `make_order`. Factories let each test create exactly the data it is about.
# - `parametrize` gives one test per case, each in its own rolled-back transaction.
# - A fixture can only use fixtures with the same or a longer lifetime (`ScopeMismatch` otherwise).
# - Never call `asyncio.run()` (or a sync API that does, like Alembic's async `env.py`) from async code:
#   `await asyncio.to_thread(...)`, stay async (`await coursedb.migrate(conn)`), or share a connection via `run_sync`.
# - Test migrations: from an empty schema, then again to prove they are idempotent; DDL rolls back with `db_conn`.
# - Under pytest-xdist each worker is its own session: give each worker its own database, and check that it did.
# - nbval runs notebooks as tests: strict outputs, narrow sanitize rules, `raises-exception` for intended failures.


# %% [markdown]
# ## Where you stand
#
# Your checker runs in this notebook, as recorded (never your code); `show()` without a number, or
# `python3 course.py progress`, shows the whole course.

# %% tags=["progress"]
from coursedb.progress import show

show("07")
