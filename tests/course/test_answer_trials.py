"""The notebook run's right-answer and mutant checks can fail.

Notebook 00 runs under the plugin in a pytest of its own (pytester), with a catalogue whose only right
answer to Exercise 0.1 is wrong, and a mutant of its model answer that changes nothing (so no checker can
reject it). Both must be reported by the "Run All again" item, each in one sentence; so must a listing of
an equivalent mutant that does not exist.
"""

from __future__ import annotations

import pytest

from tests.helpers.notebook_run import run_notebook_00

pytest_plugins = ["pytester"]

SABOTAGE = '''
"""Exercise 0.1: a "right" answer that is wrong, a mutant that is the model answer, a stale equivalent listing."""
from coursebook import answers, mutants


async def count_users(conn) -> int:
    """counts the orders"""
    return await conn.fetchval("SELECT count(*) FROM orders")


NOT_RIGHT = answers.RightAnswer("0.1", count_users)
# Only the answers this run is about: the catalogue's own are tried by notebook 00's run, and an accepted
# wrong answer is test_notebook_run's.
answers.Catalogue.wrong = lambda self, exercise: []
answers.Catalogue.right = lambda self, exercise: [NOT_RIGHT] * 2 if exercise == "0.1" else []
real_mutants = mutants.mutants


def planted(exercise, solution, cap=mutants.MAX_PER_EXERCISE):
    if exercise != "0.1":
        return []
    planted_one = mutants.Mutant(exercise, "planted: the model answer itself", solution)
    return [*real_mutants(exercise, solution, cap), planted_one]


mutants.mutants = planted
mutants.equivalent("0.1", "no such mutant", reason="planted: a listing that names nothing")
'''


@pytest.mark.timeout(300)
def test_a_rejected_right_answer_a_surviving_mutant_and_a_stale_listing_fail_the_run(pytester, monkeypatch):
    result = run_notebook_00(pytester, monkeypatch, SABOTAGE, "again")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*Exercise 0.1, right answer count_users (counts the orders): REJECTED by the checker*",
            "*Exercise 0.1: 'no such mutant' is listed as equivalent, but no such mutant is made*",
            "*Exercise 0.1, mutant 'planted: the model answer itself' SURVIVED*",
        ],
        consecutive=False,
    )
