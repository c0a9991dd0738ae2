"""coursedb.checks: a checker cell's failures end with the property that failed, without library frames."""

from __future__ import annotations

import asyncio

import pytest

from coursedb.checks import outcome

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


async def skips() -> None:
    pytest.skip("later")


@pytest.mark.parametrize("test", [asserts, fails, expects_an_error, app_raises, skips])
def test_outcome_counts_every_way_a_test_can_fail(test):
    assert asyncio.run(outcome(test)) is not None


def test_outcome_of_a_passing_test_is_none():
    assert asyncio.run(outcome(passes)) is None
