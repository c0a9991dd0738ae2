"""The notebook run's answer checks can fail, and a wrong answer's hint is looked for where a learner sees it.

Notebook 00 runs under the plugin in a pytest of its own (pytester), with a catalogue whose only right
answer to Exercise 0.1 is wrong, and a mutant of its model answer that changes nothing (so no checker can
reject it). Both must be reported by the "Run All again" item, each in one sentence; so must a listing of
an equivalent mutant that does not exist. A wrong answer's checker runs to its first failed test; two wrong
answers fail every test: one's hint is the LAST test's property (it shows only in the whole checker's
report, which the run then reads), the other's is in no report at all (still reported).
"""

from __future__ import annotations

import pytest

from coursebook.run.checks import to_first_failure
from tests.helpers.notebook_run import run_notebook_00

pytest_plugins = ["pytester"]

SABOTAGE = '''
"""Exercise 0.1: a "right" answer that is wrong, a mutant that is the model answer, a stale equivalent listing."""
import ast

from coursebook import answers, iter_notebooks, mutants


async def count_users(conn) -> int:
    """counts the orders"""
    return await conn.fetchval("SELECT count(*) FROM orders")


async def fails_every_test(conn) -> int:
    """fails every test"""
    raise RuntimeError("planted: every test of the checker fails")


async def says_nothing_of_its_hint(conn) -> int:
    """fails without its hint"""
    raise RuntimeError("planted: every test of the checker fails")


(NOTEBOOK,) = iter_notebooks(["00"])
CHECKER = ast.parse(NOTEBOOK.cells[NOTEBOOK.exercises["0.1"].checker].source.split("\\n", 1)[1])
*_, LAST = [ast.get_docstring(f) for f in CHECKER.body if getattr(f, "name", "").startswith("test_")]
WRONG = [
    answers.WrongAnswer("0.1", fails_every_test, hint="not yet: " + " ".join(LAST.split("\\n\\n")[0].split())),
    answers.WrongAnswer("0.1", says_nothing_of_its_hint, hint="a hint no checker says"),
]
NOT_RIGHT = answers.RightAnswer("0.1", count_users)
# Only the answers this run is about: the catalogue's own are tried by notebook 00's run, and an accepted
# wrong answer is test_notebook_run's.
answers.Catalogue.wrong = lambda self, exercise: WRONG if exercise == "0.1" else []
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
            "*Exercise 0.1, wrong answer says_nothing_of_its_hint (fails without its hint): rejected, but without "
            "the hint 'a hint no checker says'*",
            "*Exercise 0.1, right answer count_users (counts the orders): REJECTED by the checker*",
            "*Exercise 0.1: 'no such mutant' is listed as equivalent, but no such mutant is made*",
            "*Exercise 0.1, mutant 'planted: the model answer itself' SURVIVED*",
        ],
        consecutive=False,
    )
    tally = "Exercise 0.1: wrong answers rejected 1/2 by hand, *; hints only past the first failed test 2"
    result.stdout.fnmatch_lines([tally])
    assert "wrong answer fails_every_test" not in result.stdout.str(), "its hint, in the whole checker's report, missed"


@pytest.mark.parametrize(
    ("cell", "stops"),
    [
        ("%%ipytest --exercise 3.1\nimport shop\n", "%%ipytest -x --exercise 3.1\nimport shop\n"),
        ("%%ipytest\ndef test_a():\n    pass\n", "%%ipytest -x\ndef test_a():\n    pass\n"),
        ("print('not a checker')\n", "print('not a checker')\n"),
    ],
)
def test_a_checker_to_its_first_failure_is_the_same_cell_with_x(cell, stops):
    assert to_first_failure(cell) == stops
