"""coursedb.checks: a checker cell's failures end with the property that failed, without library frames."""

from __future__ import annotations

import asyncio

import pytest

from coursedb.checks import cancel_while_waiting, outcome

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


async def test_cancel_while_waiting_cancels_only_a_call_stuck_behind_a_lock(db_committed):
    """A call that waits for a row another transaction holds is cancelled (and ends cancelled); one that never waits
    ends by itself with its result."""
    async with db_committed.acquire() as holder, db_committed.acquire() as conn:
        user_id = await holder.fetchval("INSERT INTO users (email, name) VALUES ('a@example.com', 'A') RETURNING id")
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            free = await cancel_while_waiting(conn.fetchval("SELECT 1"), conn, holder)
            stuck = await cancel_while_waiting(
                conn.execute("UPDATE users SET name = 'B' WHERE id = $1", user_id), conn, holder
            )
            assert await conn.fetchval("SELECT 1") == 1  # after the server has cancelled the UPDATE, still locked out
        assert stuck.cancelled(), stuck
        assert free.done() and not free.cancelled() and free.result() == 1, free
        assert await conn.fetchval("SELECT name FROM users WHERE id = $1", user_id) == "A"
