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
            "FAILED *notebooks/00_start_here.ipynb::Run All again*",
            "FAILED *notebooks/00_start_here.ipynb::connection budget*",
        ]
    )


def test_xdist_workers_run_on_the_controllers_server_and_only_it_removes_it(monkeypatch):
    """The workbench travels in config.stash and workerinput: no environment variable, no module global."""
    import types

    from coursebook import pytest_plugin
    from coursebook.run.workbench import WORKBENCH, Workbench

    monkeypatch.setenv("COURSEDB_BACKEND", "embedded")
    monkeypatch.delenv("COURSEDB_URL", raising=False)
    controller = Workbench.for_config(types.SimpleNamespace())  # a home of its own; nothing started yet
    node = types.SimpleNamespace(config=types.SimpleNamespace(stash={WORKBENCH: controller}), workerinput={})
    pytest_plugin.pytest_configure_node(node)
    worker = Workbench.for_config(types.SimpleNamespace(workerinput=node.workerinput))
    assert worker.server.home == controller.server.home and controller.owns_server and not worker.owns_server
    assert worker.close() == [] and controller.server.home.exists(), "a worker removed the run's server home"
    assert controller.close() == [] and not controller.server.home.exists()
    monkeypatch.setenv("COURSEDB_BACKEND", "docker")
    assert Workbench.for_config(types.SimpleNamespace()).server is None, "docker: the notebooks use its server"


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (["notebooks/03_rollback_isolation.ipynb"], True),
        (["notebooks"], True),
        (["tests", "notebooks"], True),  # pyproject's testpaths: the whole suite
        (["."], True),
        (["tests/course/test_quick.py::test_help"], False),
        (["tests"], False),
    ],
)
def test_the_server_starts_early_only_for_a_run_with_notebooks(args, starts):
    """The controller starts the notebooks' server while the workers start only if the run holds a notebook."""
    import types

    from coursebook import ROOT
    from coursebook.run.workbench import runs_notebooks

    config = types.SimpleNamespace(args=args, invocation_params=types.SimpleNamespace(dir=ROOT))
    assert runs_notebooks(config) is starts
