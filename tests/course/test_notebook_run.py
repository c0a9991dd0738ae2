"""The checks of each notebook's one kernel run (coursebook/pytest_plugin.py) can fail.

Notebook 00 runs under the plugin in a pytest of its own, with a catalogue in which one "wrong
answer" is the model answer itself and a budget of one connection. Both must be reported, each in
the item that owns it, with one sentence that says what is wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from coursebook import NBVAL_ARGS, ROOT, iter_notebooks

SABOTAGE = '''
"""A catalogue whose only entry for Exercise 0.1 is its solution, and a room budget of one connection."""
from coursedb import room
from tests.course import wrong_answers

from coursebook import iter_notebooks

(NOTEBOOK,) = iter_notebooks(["00"])
SOLUTION = NOTEBOOK.cells[NOTEBOOK.exercises["0.1"].solution].source


class TheSolution:
    name, mistake, hint = "the_solution", "not wrong at all", "anything"

    def cell_source(self, target):
        return SOLUTION


real_load = wrong_answers.load
wrong_answers.load = lambda: {**real_load(), "0.1": [TheSolution()] * 3}
room.BUDGET = 1
'''


@pytest.mark.timeout(300)
def test_an_accepted_wrong_answer_and_a_blown_budget_fail_their_items(tmp_path):
    (tmp_path / "sabotage.py").write_text(SABOTAGE)
    (notebook,) = iter_notebooks(["00"])
    command = [sys.executable, "-m", "pytest", "-p", "sabotage", "-p", "coursebook.pytest_plugin", *NBVAL_ARGS]
    # Only the two items under test: "Run All again" runs every cell itself, so the first pass can go.
    command += ["-p", "no:xdist", "-p", "no:cacheprovider", "-q", "-rf", "-k", "again or budget"]
    command.append(str(notebook.book_path))
    env = {**_passed_on(), "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    out = done.stdout
    assert done.returncode == 1, out[-3000:]
    assert "FAILED notebooks/00_start_here.ipynb::Run All again" in out, out[-3000:]
    assert "Exercise 0.1, wrong answer the_solution (not wrong at all): ACCEPTED by the checker" in out
    assert "FAILED notebooks/00_start_here.ipynb::connection budget" in out, out[-3000:]
    assert "the room budget is 1 per learner" in out
    assert "2 failed" in out, out[-3000:]


def _passed_on() -> dict[str, str]:
    """This process's environment minus pytest's and coursedb's settings: the run picks its own server."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COURSEDB_", "PYTHONPATH"))}
