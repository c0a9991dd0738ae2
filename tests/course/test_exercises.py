"""Every exercise is checked both ways: the starting cell fails its checker with a hint,
and the solution in notebooks/solutions/ passes it."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
EXERCISE_ID = re.compile(r"^# Exercise (\d+\.\d+)", re.MULTILINE)


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def exercises(nb) -> list[tuple[int, str]]:
    found = []
    for index, cell in enumerate(nb.cells):
        if "exercise" in tags(cell):
            match = EXERCISE_ID.search(cell.source)
            assert match, f"exercise cell {index} must start with '# Exercise N.M'"
            found.append((index, match.group(1)))
    return found


def solutions(notebook: Path) -> dict[str, str]:
    path = NOTEBOOKS_DIR / "solutions" / (notebook.stem + ".py")
    parts = re.split(r"^# %% Exercise (\d+\.\d+)\s*$", path.read_text(), flags=re.MULTILINE)
    return {ex_id: body.strip() + "\n" for ex_id, body in zip(parts[1::2], parts[2::2], strict=True)}


def output_text(cell) -> str:
    return "".join(o.get("text", "") + o.get("evalue", "") for o in cell.get("outputs", []))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_starting_cells_fail_their_checkers_with_a_hint(notebook):
    nb = nbformat.read(notebook, as_version=4)
    found = exercises(nb)
    assert found, f"{notebook.name} has no exercise"
    for index, ex_id in found:
        checker = nb.cells[index + 1]
        assert "checker" in tags(checker), f"Exercise {ex_id}: the cell after it must be tagged 'checker'"
        assert checker.source.lstrip().startswith("%%ipytest"), f"Exercise {ex_id}: the checker runs real tests"
        assert "raises-exception" in tags(checker)
        text = output_text(checker)
        assert "failed" in text, f"Exercise {ex_id}: the committed checker output shows no failing test"
        assert f"Exercise {ex_id}" in text, f"Exercise {ex_id}: the failure does not name the exercise"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_solutions_pass_their_checkers(notebook):
    nb = nbformat.read(notebook, as_version=4)
    answers = solutions(notebook)
    for index, ex_id in exercises(nb):
        assert ex_id in answers, f"no solution for Exercise {ex_id} in solutions/{notebook.stem}.py"
        nb.cells[index].source = f"# Exercise {ex_id} (solution)\n" + answers[ex_id]
        checker = nb.cells[index + 1]
        checker.metadata["tags"] = [t for t in tags(checker) if t != "raises-exception"]
    resources = {"metadata": {"path": str(NOTEBOOKS_DIR)}}
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources=resources)
    client.execute()  # raises CellExecutionError if any checker (or any untagged cell) fails
    for index, _ in exercises(nb):
        assert "passed" in output_text(nb.cells[index + 1])
