"""The wrong-answer catalogue and the hints, read without a kernel.

That every catalogue entry is rejected by its checker with its hint is checked where the notebook
runs, in the same kernel as strict nbval: the "Run All again" item of each notebook
(coursebook/pytest_plugin.py). Here: every exercise has at least three entries, the stub's first
message nudges without giving the answer, and fuller hints are collapsed, one step at a time.
"""

from __future__ import annotations

import ast
import re

import pytest

from coursebook import answers, iter_notebooks
from coursebook.answers import cell_tree


def test_every_exercise_has_three_wrong_answers_and_every_entry_an_exercise():
    for notebook in iter_notebooks():
        catalogue = answers.for_notebook(notebook)
        few = {key: len(catalogue.wrong(key)) for key in notebook.exercises if len(catalogue.wrong(key)) < 3}
        assert not few, f"{notebook.stem}: exercises with fewer than 3 wrong answers: {few}"
        stray = catalogue.exercises - set(notebook.exercises)
        assert not stray, (
            f"{answers.path_for(notebook).name}: entries for exercises {notebook.stem} does not have: {stray}"
        )
    stems = {notebook.stem for notebook in iter_notebooks()}
    orphans = [path.name for path in answers.ANSWERS_DIR.glob("*.py") if path.stem not in stems]
    assert not orphans, f"catalogues of no notebook: {orphans}"


# --- hints reveal step by step ------------------------------------------------------------------

HINTED = ("00", "01", "02", "03", "04", "05", "06", "07")  # notebooks 08+ are written by nb2 (issue 14)
ALL_NOTEBOOKS = list(iter_notebooks())


def _stub_message(stub: str) -> str:
    """The text of the stub's NotImplementedError."""
    for node in ast.walk(cell_tree(stub)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            return " ".join(n.value for n in ast.walk(node.exc.args[0]) if isinstance(n, ast.Constant))
    return ""


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=lambda n: n.stem)
def test_stub_messages_nudge_without_giving_the_answer(notebook):
    """The error a learner sees first is a nudge: it shares no phrase of 20 characters with the model answer."""
    from difflib import SequenceMatcher

    for key, exercise in notebook.exercises.items():
        message = " ".join(_stub_message(notebook.cells[exercise.stub].source).split())
        assert f"Exercise {key}" in message, f"Exercise {key}: the stub's NotImplementedError must name the exercise"
        solution = " ".join(notebook.cells[exercise.solution].source.split())
        match = SequenceMatcher(None, message, solution, autojunk=False).find_longest_match()
        shared = message[match.a : match.a + match.size]
        assert match.size < 20, f"Exercise {key}: the stub's message gives away the answer: {shared!r}"


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=lambda n: n.stem)
def test_hints_are_collapsed_and_come_in_steps(notebook):
    """Fuller help only when the learner asks: every hint is a collapsed <details>, opened one at a time."""
    for key, exercise in notebook.exercises.items():
        if notebook.stem.startswith(HINTED):
            assert exercise.hints, f"Exercise {key} has no hint cell"
        for index in exercise.hints:
            text = notebook.cells[index].source
            assert notebook.cells[index].cell_type == "markdown", f"Exercise {key}: hint cell {index} is not markdown"
            steps = text.count("<details>")
            assert steps >= 1 and steps == text.count("</details>"), f"Exercise {key}: hint {index} is not collapsed"
            outside = re.sub(r"<details>.*?</details>", "", text, flags=re.DOTALL).strip()
            assert not outside, f"Exercise {key}: hint cell {index} shows text outside <details>: {outside[:80]!r}"


def test_catalogues_are_not_collected_as_tests_or_notebooks():
    """pytest and nbval pass over notebooks/answers/ (the run loads the catalogues itself)."""
    import subprocess
    import sys

    from coursebook import NBVAL_ARGS, ROOT

    args = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", *NBVAL_ARGS]
    done = subprocess.run([*args, "notebooks/answers"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 5 and "no tests collected" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
