"""Every exercise is tagged completely, and its committed checker output fails with a hint.

The other way round (the model answer passes its checker) is checked where the notebooks run:
the course's test command runs each notebook's solutions in its kernel (coursebook/pytest_plugin.py)."""

import pytest

from coursebook import RAISES, find_exercises, iter_notebooks, tags

NOTEBOOKS = list(iter_notebooks())


def output_text(cell) -> str:
    return "".join(o.get("text", "") + o.get("evalue", "") for o in cell.get("outputs", []))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_every_exercise_has_a_stub_a_solution_and_a_checker(notebook):
    assert notebook.exercises, f"{notebook.stem} has no exercise"
    for ex_id, ex in notebook.exercises.items():
        assert ex.solution is not None, f"Exercise {ex_id} has no cell tagged 'solution'"
        assert ex.checker is not None, f"Exercise {ex_id} has no cell tagged 'checker'"
        assert ex.stub < ex.solution < ex.checker, f"Exercise {ex_id}: keep stub, solution, checker in this order"
        checker = notebook.cells[ex.checker]
        assert checker.source.lstrip().startswith("%%ipytest"), f"Exercise {ex_id}: the checker runs real tests"
        assert RAISES in tags(checker), f"Exercise {ex_id}: the checker fails on the stub, so tag it {RAISES}"


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
