"""coursedb.checks: a checker cell's failures end with the property that failed, without library frames."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from coursedb.checks import (
    answer_to,
    blocked,
    cancel_if_waiting,
    cancel_while_waiting,
    cancelled_cleanly,
    outcome,
    result_of,
    server_error_reaches_caller,
    until_idle,
)
from tests.helpers import ROOT

pytest_plugins = ["pytester"]

CHECKER = '''
import json

import pytest


def learners_answer(text):
    return json.loads(text)  # the learner's own line: it must show


def test_parses_the_payload():
    """The payload text becomes a Python object."""
    assert learners_answer("{bad") == {}


def test_says_why():
    pytest.fail("the payload was stored as a string", pytrace=False)


def test_passes():
    """Never shown: it passes."""
'''


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_checker=CHECKER)
    plain = ("-p", "no:cacheprovider", "-p", "no:asyncio")  # the checker cell here is synchronous
    return pytester.runpytest_inprocess("-p", "coursedb.checks", "--tb=short", *plain, *args)


def test_each_failure_ends_with_its_property_and_shows_no_library_frame(pytester):
    result = run(pytester, "--exercise", "9.9")
    result.assert_outcomes(failed=2, passed=1)
    text = result.stdout.str()
    assert "json/decoder.py" not in text and "json/__init__.py" not in text, text
    result.stdout.fnmatch_lines(
        [
            "*return json.loads(text)  # the learner's own line: it must show",
            "E   json.decoder.JSONDecodeError: *",
            "Exercise 9.9, not yet: The payload text becomes a Python object.",
            "the payload was stored as a string",
            "Exercise 9.9, not yet: says why",
        ]
    )
    assert "Never shown" not in text


def test_without_an_exercise_nothing_changes(pytester):
    result = run(pytester)
    result.assert_outcomes(failed=2, passed=1)
    assert "json/decoder.py" in result.stdout.str()
    assert "not yet" not in result.stdout.str()


async def passes() -> None:
    pass


async def asserts() -> None:
    assert 1 == 2


async def fails() -> None:
    pytest.fail("no")


async def expects_an_error() -> None:
    with pytest.raises(ValueError):
        pass


async def app_raises() -> None:
    raise LookupError("the app's own error")


async def hangs() -> None:
    await asyncio.sleep(60)


@pytest.mark.parametrize("test", [asserts, fails, expects_an_error, app_raises])
def test_outcome_counts_every_way_a_test_can_fail(test):
    ended = asyncio.run(outcome(test))
    assert ended.failed and not ended.passed, ended


def test_outcome_of_a_passing_test():
    ended = asyncio.run(outcome(passes))
    assert ended.passed and not ended.failed and str(ended) == "passed"


def test_outcome_of_a_test_that_hangs_is_a_failure():
    ended = asyncio.run(outcome(hangs, seconds=0.05))
    assert ended.failed and "had not ended after 0.05 s" in str(ended), ended


# A learner's test of a web API that skips whenever the API misbehaves, and a test that runs it against an API
# that answers every sign-up with 500.
SKIPS_WHEN_UNEXPECTED = """
import asyncio
from pathlib import Path

import pytest


async def check_sign_up(status_code):
    if status_code != 201:
        pytest.skip(f"API answered {status_code}: flaky?")


def test_against_a_broken_api():
    asyncio.run(check_sign_up(500))
"""


def test_a_skip_is_neither_a_pass_nor_a_failure(pytester):
    """A real pytest run of a test that skips against a broken app is green (1 skipped, exit 0); outcome() says
    'skipped', so a checker neither counts it as failing against the broken app nor as passing."""
    pytester.makepyfile(test_learner=SKIPS_WHEN_UNEXPECTED)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(skipped=1)
    assert result.ret == 0
    learner: dict = {}
    exec(SKIPS_WHEN_UNEXPECTED, learner)
    ended = asyncio.run(outcome(learner["check_sign_up"], 500))
    assert ended.how == "skipped" and not ended.failed and not ended.passed, ended
    assert "API answered 500: flaky?" in str(ended) and "neither a pass nor a failure" in str(ended), ended


async def skips() -> None:
    pytest.skip("later")


async def xfails() -> None:
    pytest.xfail("known bug")


@pytest.mark.skip
async def marked_skip() -> None:
    raise AssertionError("never runs")


@pytest.mark.skipif(True, reason="not today")
async def marked_skipif() -> None:
    raise AssertionError("never runs")


@pytest.mark.skipif(False, reason="never")
async def marked_skipif_false() -> None:
    raise AssertionError("runs, and fails")


@pytest.mark.xfail
async def marked_xfail_fails() -> None:
    raise AssertionError("expected to fail")


@pytest.mark.xfail
async def marked_xfail_passes() -> None:
    pass


@pytest.mark.xfail(strict=True)
async def marked_strict_xfail_passes() -> None:
    pass


@pytest.mark.parametrize(
    ("test", "how"),
    [
        (skips, "skipped"),
        (xfails, "xfailed"),
        (marked_skip, "skipped"),
        (marked_skipif, "skipped"),
        (marked_skipif_false, "failed"),
        (marked_xfail_fails, "xfailed"),
        (marked_xfail_passes, "xpassed"),
        (marked_strict_xfail_passes, "failed"),
    ],
)
def test_outcome_says_skips_and_xfails_as_pytest_does(test, how):
    ended = asyncio.run(outcome(test))
    assert ended.how == how, ended
    if how not in ("passed", "failed"):
        assert not ended.passed and not ended.failed and "exits 0" in str(ended), ended


async def locks_but_swallows_the_cancellation(conn, user_id: int) -> bool:
    try:
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)  # changes nothing, if it runs late
    except asyncio.CancelledError:
        return False
    return True


async def test_cancel_while_waiting_cancels_only_a_call_stuck_behind_a_lock(db_committed):
    """A call that waits for a row another transaction holds is cancelled (and ends cancelled); one that never waits
    ends by itself with its result."""
    async with db_committed.acquire() as holder, db_committed.acquire() as conn:
        user_id = await holder.fetchval("INSERT INTO users (email, name) VALUES ('a@example.com', 'A') RETURNING id")
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            free = await cancel_while_waiting(conn.fetchval("SELECT 1"), conn, holder)
            unblocked, waited = await cancel_if_waiting(conn.fetchval("SELECT 2"), conn, holder)
            assert not waited and unblocked.result() == 2, unblocked
            stuck = await cancel_while_waiting(
                conn.execute("UPDATE users SET name = 'B' WHERE id = $1", user_id), conn, holder
            )
            assert await conn.fetchval("SELECT 1") == 1  # after the server has cancelled the UPDATE, still locked out
            swallowed, waited = await cancel_if_waiting(
                locks_but_swallows_the_cancellation(conn, user_id), conn, holder
            )
            assert waited and swallowed.result() is False, swallowed  # it waited, though its task does not say so
        await until_idle(conn)  # the swallowed call's statement, if the server had not cancelled it yet
        assert stuck.cancelled(), stuck
        assert free.done() and not free.cancelled() and free.result() == 1, free
        assert await conn.fetchval("SELECT name FROM users WHERE id = $1", user_id) == "A"


@pytest.mark.parametrize("in_transaction", [False, True], ids=["alone", "in-a-transaction"])
async def test_blocked_names_only_the_probes_a_held_lock_stops(db_committed, in_transaction):
    """A probe that needs a row another transaction holds is named, the free ones are not (SQL, SQL with arguments,
    a call); each probe's work and its lock_timeout are undone, and the connection, or its transaction, goes on."""
    async with db_committed.acquire() as holder, db_committed.acquire() as conn:
        held = await holder.fetchval("INSERT INTO users (email, name) VALUES ('a@example.com', 'A') RETURNING id")
        free = await holder.fetchval("INSERT INTO users (email, name) VALUES ('b@example.com', 'B') RETURNING id")
        timeout = await conn.fetchval("SHOW lock_timeout")
        callers = conn.transaction()
        if in_transaction:
            await callers.start()
            await conn.execute("INSERT INTO events (kind, payload) VALUES ('caller', '{}')")
        try:
            async with holder.transaction():
                await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", held)
                names = await blocked(
                    conn,
                    {
                        "add a user": "INSERT INTO users (email, name) VALUES ('c@example.com', 'C')",
                        "rename the held user": ("UPDATE users SET name = 'X' WHERE id = $1", held),
                        "rename the free user": lambda c: c.execute("UPDATE users SET name = 'Y' WHERE id = $1", free),
                        "delete the held user": lambda c: c.execute("DELETE FROM users WHERE id = $1", held),
                    },
                    wait=0.05,
                )
                assert names == ["rename the held user", "delete the held user"], names
                assert await conn.fetchval("SHOW lock_timeout") == timeout
                assert conn.is_in_transaction() == in_transaction
                rows = await conn.fetch("SELECT email, name FROM users ORDER BY email")
                assert [tuple(row) for row in rows] == [("a@example.com", "A"), ("b@example.com", "B")], rows
                assert await conn.fetchval("SELECT count(*) FROM events WHERE kind = 'caller'") == int(in_transaction)
        finally:
            if in_transaction:
                await callers.rollback()


async def test_blocked_refuses_a_wait_that_would_never_end(db_conn):
    """lock_timeout 0 means no limit: a wait of 0 s would let a blocked probe wait for ever."""
    with pytest.raises(ValueError, match="needs a wait above 0 s"):
        await blocked(db_conn, {"count": "SELECT 1"}, wait=0)


async def test_result_of_gives_the_result_or_one_sentence():
    """A call that returned gives its result; one that raised, was cancelled or never ends fails with its sentence
    (and one that never ends is cancelled)."""

    async def returns() -> int:
        return 7

    async def raises() -> None:
        raise KeyError("order")

    assert await result_of(asyncio.ensure_future(returns()), "the call") == 7
    with pytest.raises(pytest.fail.Exception, match=r"^the call raised KeyError\('order'\)$"):
        await result_of(asyncio.ensure_future(raises()), "the call")
    cancelled = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(pytest.fail.Exception, match=r"^the call raised 'CancelledError'$"):
        await result_of(cancelled, "the call")
    hangs = asyncio.ensure_future(asyncio.sleep(10))
    with pytest.raises(pytest.fail.Exception, match=r"^the call had not ended 0.05 s after the holder was done$"):
        await result_of(hangs, "the call", seconds=0.05)
    await asyncio.wait({hangs}, timeout=1)
    assert hangs.cancelled()


async def test_until_idle_waits_for_a_statement_left_running_else_terminates(db_committed):
    """A statement left running on the connection (a shielded query) is waited for, then the connection answers; an
    aborted transaction counts as idle; one still running after `seconds` (stuck behind a lock) gets the connection
    terminated."""
    async with db_committed.acquire() as holder, db_committed.acquire() as conn:
        left = asyncio.ensure_future(conn.execute("SELECT pg_sleep(0.2)"))
        await asyncio.sleep(0.05)
        await until_idle(conn)
        assert left.done() and await conn.fetchval("SELECT 1") == 1
        async with conn.transaction():
            with pytest.raises(asyncpg.DivisionByZeroError):
                await conn.execute("SELECT 1 / 0")
            await until_idle(conn)  # refused, yet answered
            assert not conn.is_closed()
        user_id = await holder.fetchval("INSERT INTO users (email, name) VALUES ('a@example.com', 'A') RETURNING id")
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            stuck = asyncio.ensure_future(conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id))
            await asyncio.sleep(0.05)
            await until_idle(conn, seconds=0.2)
        await asyncio.wait({stuck}, timeout=5)
        assert isinstance(stuck.exception(), asyncpg.ConnectionDoesNotExistError), stuck  # terminated, not answered


# --- the state after the call: every async check in --exercise mode gets it -------------------------------------

ROOT_CONFTEST = (ROOT / "conftest.py").read_text()  # db_url, db_pool, db_conn

# Each answer below leaves something on the caller's connection (or running); each check calls it and passes, so
# only the state after the call can fail it. The clean twins do the same work and put everything back.
LEAKY_CHECKER = '''
import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coursedb.checks import examples


async def count(conn):
    return await conn.fetchval("SELECT count(*) FROM users")


async def test_set(db_conn):
    """Counts the users."""
    await db_conn.execute("SET enable_seqscan = off")
    assert await count(db_conn) == 0


async def test_set_local_in_a_savepoint(db_conn):
    """Counts the users in a transaction of its own."""
    async with db_conn.transaction():  # a savepoint: RELEASE keeps what SET LOCAL did
        await db_conn.execute("SET LOCAL synchronous_commit = off")
    assert await count(db_conn) == 0


async def test_query_logger(db_conn):
    """Logs its queries."""
    db_conn.add_query_logger(print)
    assert await count(db_conn) == 0


async def test_listener(db_conn):
    """Listens."""
    await db_conn.add_listener("jobs", lambda *args: None)


async def test_log_and_termination_listeners(db_conn):
    """Watches the connection."""
    db_conn.add_log_listener(print)
    db_conn.add_termination_listener(print)


async def test_task_left_running(db_conn):
    """Refreshes in the background."""

    async def refresh():
        await asyncio.sleep(30)

    asyncio.get_running_loop().create_task(refresh())


async def test_transaction_left_open(db_conn):
    """Writes in a transaction of its own."""
    await db_conn.transaction().start()


async def test_logger_on_a_pooled_connection(db_conn, db_pool):
    """Uses another connection of the pool."""
    async with db_pool.acquire() as other:
        other.add_query_logger(print)
        assert await count(other) == 0


@examples(3)
@given(st.integers())
async def test_generated(db_conn, number):
    """Counts, whatever the number."""
    await db_conn.execute("SET LOCAL work_mem = '2MB'")


async def test_fails_itself(db_conn):
    """The check's own property."""
    await db_conn.execute("SET enable_seqscan = off")
    assert await count(db_conn) == 1
'''

CLEAN_CHECKER = '''
import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coursedb.checks import examples, savepoint


async def count(conn):
    return await conn.fetchval("SELECT count(*) FROM users")


async def test_set(db_conn):
    await db_conn.execute("SET enable_seqscan = off")
    assert await count(db_conn) == 0
    await db_conn.execute("RESET enable_seqscan")


async def test_set_local_in_a_savepoint(db_conn):
    async with savepoint(db_conn):  # rolled back: so is SET LOCAL
        await db_conn.execute("SET LOCAL synchronous_commit = off")
    assert await count(db_conn) == 0


async def test_query_logger(db_conn):
    db_conn.add_query_logger(print)
    assert await count(db_conn) == 0
    db_conn.remove_query_logger(print)


async def test_listener(db_conn):
    def heard(*args):
        pass

    await db_conn.add_listener("jobs", heard)
    await db_conn.remove_listener("jobs", heard)


async def test_log_and_termination_listeners(db_conn):
    db_conn.add_log_listener(print)
    db_conn.add_termination_listener(print)
    db_conn.remove_log_listener(print)
    db_conn.remove_termination_listener(print)


async def test_advisory_xact_lock(db_conn):
    """A claim that lasts until the caller's transaction ends (like FOR UPDATE) is the caller's business."""
    await db_conn.execute("SELECT pg_advisory_xact_lock_shared(7, 9)")


async def test_task_left_running(db_conn):
    async def refresh():
        await asyncio.sleep(0.01)

    task = asyncio.get_running_loop().create_task(refresh())
    await task


async def test_transaction_left_open(db_conn):
    async with db_conn.transaction():
        pass


async def test_logger_on_a_pooled_connection(db_conn, db_pool):
    async with db_pool.acquire() as other:
        other.add_query_logger(print)
        assert await count(other) == 0
        other.remove_query_logger(print)


@examples(3)
@given(st.integers())
async def test_generated(db_conn, number):
    async with savepoint(db_conn):
        await db_conn.execute("SET LOCAL work_mem = '2MB'")


@pytest.mark.changes("statement_timeout", "Application_Name")
async def test_the_check_sets_its_own(db_conn):
    """A check that sets what it then expects the answer to keep says so with the mark."""
    await db_conn.execute("SET LOCAL statement_timeout = '7s'; SET LOCAL application_name = 'the test'")
'''

ASYNC = ("-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=session")
ASYNC += ("-o", "asyncio_default_test_loop_scope=session", "-p", "no:cacheprovider", "-p", "coursedb.checks")


def run_checker(pytester: pytest.Pytester, checker: str, *args: str) -> pytest.RunResult:
    pytester.makeconftest(ROOT_CONFTEST)
    pytester.makepyfile(test_checker=checker)
    return pytester.runpytest_inprocess(*ASYNC, "--tb=short", "-p", "no:randomly", *args)


LEFT = "Exercise 9.9, not yet: the call must leave the caller's connection as it found it: "


def test_what_a_call_leaves_on_the_callers_connection_fails_its_check(pytester):
    result = run_checker(pytester, LEAKY_CHECKER, "--exercise", "9.9")
    result.assert_outcomes(failed=10)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            LEFT + "enable_seqscan is 'off' after the call (was 'on'): a SET, and a SET LOCAL too (it lasts until the "
            "caller's transaction ends), outlives the call, so change no setting of a connection you were given",
            LEFT + "synchronous_commit is 'off' after the call (was 'on')*",
            LEFT + "a query logger added to it (print) is still there: conn.remove_query_logger() what you add*",
            LEFT + "a listener on channel 'jobs' added to it (test_listener.<locals>.<lambda>) is still there: "
            "conn.remove_listener() what you add before returning",
            LEFT + "a termination listener added to it (print) is still there*; a log listener added to it (print)*",
            "Exercise 9.9, not yet: the call must leave nothing running after it returns: a task it started "
            "(test_task_left_running.<locals>.refresh) still ran 1 s after it returned: await or cancel every task*",
            LEFT + "a transaction the call started on it (a savepoint) is still open: end every transaction you start*",
            LEFT + "a query logger added to a pooled connection (print) is still there*",
            LEFT + "work_mem is '2MB' after the call (was '4MB')*",
            "Exercise 9.9, not yet: The check's own property.",
        ],
        consecutive=False,
    )
    assert "Counts" not in text and "Traceback" not in text, text  # the leftover's sentence, not the docstring's


def test_a_call_that_puts_everything_back_passes(pytester):
    result = run_checker(pytester, CLEAN_CHECKER, "--exercise", "9.9")
    result.assert_outcomes(passed=11)


def test_without_an_exercise_the_state_after_the_call_is_not_checked(pytester):
    result = run_checker(pytester, LEAKY_CHECKER, "-k", "test_set or test_query_logger or test_generated")
    result.assert_outcomes(passed=4)


# --- cancelled_cleanly: what a cancelled call must leave its caller ---------------------------------------------

RENAME = "UPDATE users SET name = 'B' WHERE id = $1"


async def renames(conn, user_id):
    await conn.execute(RENAME, user_id)


async def renames_in_a_transaction(conn, user_id):
    async with conn.transaction():
        await conn.execute("INSERT INTO events (kind, payload) VALUES ('rename', '{}')")
        await conn.execute(RENAME, user_id)


async def swallows_the_cancellation(conn, user_id):
    try:
        await conn.execute(RENAME, user_id)
    except asyncio.CancelledError:
        return False
    return True


async def shields_the_query(conn, user_id):
    await asyncio.shield(conn.execute(RENAME, user_id))


async def never_waits(conn, user_id):
    return await conn.fetchval("SELECT name FROM users WHERE id = $1", user_id)


async def leaves_its_transaction_open(conn, user_id):
    await conn.transaction().start()
    await conn.execute(RENAME, user_id)


async def commits_half_first(conn, user_id):
    await conn.execute("INSERT INTO events (kind, payload) VALUES ('rename', '{}')")  # committed at once
    await conn.execute(RENAME, user_id)


def events_of(conn):
    async def events():
        return await conn.fetchval("SELECT count(*) FROM events")

    return events


CANCELLED_WRONG = {
    swallows_the_cancellation: "cancelled while it waited for a lock, the call returned False: a cancelled call must",
    shields_the_query: "after the cancelled call the caller's connection cannot be used (cannot perform operation: "
    "another operation is in progress) (the server still runs \"UPDATE users SET name = 'B' WHERE id = $1\" for it)",
    never_waits: "the call never waited for the lock another transaction holds (it returned 'A')",
    leaves_its_transaction_open: "the cancelled call left the caller's connection inside a transaction it started",
    commits_half_first: "the cancelled call's work was not undone: 0 before the call, 1 after it",
}


@pytest.mark.parametrize("call", [renames, renames_in_a_transaction, *CANCELLED_WRONG], ids=lambda call: call.__name__)
async def test_cancelled_cleanly_passes_a_clean_cancellation_and_names_what_a_wrong_one_left(db_committed, call):
    """Each wrong call fails the check with its one sentence; the right ones pass."""
    async with db_committed.acquire() as holder, db_committed.acquire() as conn:
        user_id = await holder.fetchval("INSERT INTO users (email, name) VALUES ('a@example.com', 'A') RETURNING id")
        tasks = asyncio.all_tasks()
        try:
            async with holder.transaction():
                await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
                if call not in CANCELLED_WRONG:
                    await cancelled_cleanly(call(conn, user_id), conn, holder, events_of(conn), seconds=2)
                else:
                    with pytest.raises(pytest.fail.Exception) as failed:
                        await cancelled_cleanly(call(conn, user_id), conn, holder, events_of(conn), seconds=2)
                    assert CANCELLED_WRONG[call] in str(failed.value), failed.value
                    return  # what it left is cleaned up below; whether the server saw the cancel in time is a race
        finally:  # what the wrong calls left: a shielded query, an open transaction
            if left := asyncio.all_tasks() - tasks - {asyncio.current_task()}:
                await asyncio.wait(left, timeout=5)
            if conn.is_in_transaction():
                await conn.execute("ROLLBACK")
        assert await conn.fetchval("SELECT name FROM users WHERE id = $1", user_id) == "A"


# --- server_error_reaches_caller: an error the server raises is no return value ---------------------------------

LOOKUP = "SELECT email FROM users WHERE id = 42"


async def looks_up(conn):
    return await conn.fetchval(LOOKUP)


async def raises_its_own_from_it(conn):
    try:
        return await conn.fetchval(LOOKUP)
    except asyncpg.PostgresError as exc:
        raise LookupError("user 42 could not be read") from exc


async def none_on_error(conn):
    try:
        return await conn.fetchval(LOOKUP)
    except asyncpg.PostgresError:
        return None


async def none_in_its_own_savepoint(conn):
    try:
        async with conn.transaction():
            return await conn.fetchval(LOOKUP)
    except asyncpg.PostgresError:
        return None


async def never_asks(conn):
    return "cached@example.com"


async def another_error_instead(conn):
    failed = False
    try:
        await conn.fetchval(LOOKUP)
    except asyncpg.PostgresError:
        failed = True
    if failed:  # raised after the except block: no link to the server's error
        raise ValueError("not a valid id")


async def retries_for_ever(conn):
    while True:
        try:
            return await conn.fetchval(LOOKUP)
        except asyncpg.PostgresError:
            await asyncio.sleep(0.01)


SITUATION = "with users locked by another transaction and lock_timeout 0.005 s on the caller's connection, "
SWALLOWED = {
    none_on_error: SITUATION + "no query on users can run, yet the call returned None: let the server's error reach",
    none_in_its_own_savepoint: SITUATION + "no query on users can run, yet the call returned None",
    never_asks: SITUATION + "no query on users can run, yet the call returned 'cached@example.com'",
    another_error_instead: SITUATION + "the call raised ValueError: not a valid id, not the server's error",
    retries_for_ever: SITUATION + "the call was still running after 0.5 s: let the server's error end it",
}


@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in-a-transaction"])
@pytest.mark.parametrize("call", [looks_up, raises_its_own_from_it, *SWALLOWED], ids=lambda call: call.__name__)
async def test_server_error_reaches_caller_names_a_swallowed_error(db_pool, call, in_transaction):
    """A call that lets the server's error through passes (and gets it back); one that turns it into a value, another
    error or a wait fails with its sentence. Either way the caller's connection is left as it was: its setting, its
    transaction, and the table free again."""
    seconds = 0.5 if call is retries_for_ever else 5  # the bound only a call that never ends waits out
    async with db_pool.acquire() as holder, db_pool.acquire() as conn:
        outer = conn.transaction()
        if in_transaction:
            await outer.start()
        try:
            if call in SWALLOWED:
                with pytest.raises(pytest.fail.Exception) as failed:
                    await server_error_reaches_caller(call(conn), conn, holder, "users", seconds=seconds)
                assert SWALLOWED[call] in str(failed.value), failed.value
            else:
                error = await server_error_reaches_caller(call(conn), conn, holder, "users", seconds=seconds)
                assert isinstance(error.__cause__ or error, asyncpg.LockNotAvailableError), repr(error)
            assert conn.is_in_transaction() == in_transaction
            assert await conn.fetchval("SHOW lock_timeout") == "0"
            assert await asyncio.wait_for(conn.fetchval(LOOKUP), 5) is None  # the table is free again
        finally:
            if in_transaction:
                await outer.rollback()


async def test_server_error_reaches_caller_refuses_a_table_the_caller_holds(db_pool):
    """Called after the caller's transaction touched the table, the helper says so at once (it cannot lock the table
    against its own caller), and the call is never started."""
    async with db_pool.acquire() as holder, db_pool.acquire() as conn, conn.transaction():
        await conn.fetchval(LOOKUP)  # holds a lock on users until the transaction ends
        call = looks_up(conn)
        with pytest.raises(RuntimeError, match=r"could not lock users \(the caller's own transaction holds a lock"):
            await server_error_reaches_caller(call, conn, holder, "users")
        assert call.cr_frame is None  # closed, never run


def test_answer_to_says_an_error_on_made_up_input_in_one_sentence_and_lets_a_real_one_through():
    def broken(plan):
        return plan["Plan"]  # a list indexed by a string: TypeError

    assert answer_to(lambda: len([1, 2]), "len", "two items", made_up=True) == 2
    with pytest.raises(pytest.fail.Exception) as failed:
        answer_to(lambda: broken([]), "scan_of(plan)", "in this plan made up by the checker: []", made_up=True)
    assert str(failed.value) == (
        "scan_of(plan) raised TypeError('list indices must be integers or slices, not str'): "
        "in this plan made up by the checker: []"
    )
    assert not failed.value.pytrace  # one sentence, no traceback
    with pytest.raises(TypeError):  # a real input: the learner's traceback shows where
        answer_to(lambda: broken([]), "scan_of(plan)", "a real plan")
