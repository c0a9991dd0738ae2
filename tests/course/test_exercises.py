"""The exercises as committed: each book's checker output fails with a hint, and the answer
catalogues are where the run finds them and nowhere else.

The static rules (tags, stub, hints, catalogue sizes) are coursebook/exercises.py's, tested in
test_exercise_rules.py. That the model answer passes, every wrong answer fails with its hint and
the kernel survives is checked where the notebooks run, in their one kernel (coursebook/run/).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from coursebook import NBVAL_ARGS, ROOT, answers, find_exercises, iter_notebooks

NOTEBOOKS = list(iter_notebooks())


def output_text(cell) -> str:
    return "".join(o.get("text", "") + o.get("evalue", "") for o in cell.get("outputs", []))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_starting_cells_fail_their_checkers_with_a_hint(notebook):
    cells = notebook.read_book().cells
    found = find_exercises(cells)
    assert list(found) == list(notebook.exercises), "rebuild: python3 course.py build " + notebook.stem[:2]
    for ex_id, ex in found.items():
        assert ex.solution is None, f"Exercise {ex_id}: the built notebook holds its solution"
        text = output_text(cells[ex.checker])
        assert "failed" in text, f"Exercise {ex_id}: the committed checker output shows no failing test"
        assert f"Exercise {ex_id}" in text, f"Exercise {ex_id}: the failure does not name the exercise"


def test_every_catalogue_belongs_to_a_notebook():
    stems = {notebook.stem for notebook in NOTEBOOKS}
    found = [path for path in answers.ANSWERS_DIR.iterdir() if path.name != "__pycache__"]
    orphans = [path.name for path in found if path.suffix != ".py" or path.stem not in stems]
    assert not orphans, f"not the catalogue of a notebook (name it after the notebook's stem): {orphans}"


def test_catalogues_are_not_collected_as_tests_or_notebooks():
    """pytest and nbval pass over notebooks/answers/ (the run loads the catalogues itself)."""
    args = [sys.executable, "-m", "pytest", "--collect-only", "-q", *NBVAL_ARGS]
    done = subprocess.run([*args, "notebooks/answers"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 5 and "no tests collected" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
