"""The checks of each notebook's one kernel run (coursebook/pytest_plugin.py) can fail.

Notebook 00 runs under the plugin in a pytest of its own (pytester), started outside the repository, with
a catalogue in which one "wrong answer" is the model answer itself, a header that wants an output the
notebook never shows, and a budget of one connection. Each must be reported, in the item that owns it,
with one sentence that says what is wrong.
"""

from __future__ import annotations

import pytest

from tests.helpers.notebook_run import run_notebook_00

pytest_plugins = ["pytester"]

SABOTAGE = '''
"""A catalogue whose only entry for Exercise 0.1 is its solution, a header wanting what 00 never shows,
and a room budget of one connection."""
from coursebook import answers, iter_notebooks, model
from coursedb import room

(NOTEBOOK,) = iter_notebooks(["00"])
SOLUTION = NOTEBOOK.cells[NOTEBOOK.exercises["0.1"].solution].source


class TheSolution(answers.WrongAnswer):
    def cell_source(self, target):
        return SOLUTION


def the_solution():
    """not wrong at all"""


answers.for_notebook = lambda notebook: answers.Catalogue((TheSolution("0.1", the_solution, hint="anything"),) * 3)
model.Notebook.facts = model.Facts(must_show=("an output 00 never shows",))
room.BUDGET = 1
'''


@pytest.mark.timeout(300)
def test_an_accepted_wrong_answer_and_a_blown_budget_fail_their_items(pytester, monkeypatch):
    # Only the two items under test: "Run All again" runs every cell itself, so the first pass can go.
    result = run_notebook_00(pytester, monkeypatch, SABOTAGE, "again or budget")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "Exercise 0.1, wrong answer the_solution (not wrong at all): ACCEPTED by the checker",
            "00_start_here does not show 'an output 00 never shows' outside the repository",
            "00_start_here had * connections open at once (first while running *); the room budget is 1 per learner",
            "FAILED *notebooks/00_start_here.ipynb::Run All again",
            "FAILED *notebooks/00_start_here.ipynb::connection budget",
        ]
    )
