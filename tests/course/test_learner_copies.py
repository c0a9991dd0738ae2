"""Learner copies, run as a learner runs them.

`python3 course.py learners --out DIR` writes the copies to a folder outside the repository, and
each notebook runs there, from its own folder, in one kernel that does three checks:

1. Run All on the untouched copy: a failing cell stops the run unless it is tagged
   raises-exception, and every checker fails on its untouched stub with a hint naming the exercise.
2. Run All again in the same kernel (learners press it again and again), with each exercise's model
   answer (the `solution` cell of notebooks/src/) run right after its stub: every checker passes.
3. Every other code cell shows the same as in the first run (sanitized as nbval does).

One kernel per notebook serves the learner-copy, re-run and solution checks; strict nbval runs the
committed notebooks separately. Under `course.py test` each notebook's run gets a worker of its own
(coursebook/pytest_plugin.py).
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

from coursebook import BOOK_DIR, RAISES, ROOT, find_exercises, iter_notebooks, notebook_client, tags

NOTEBOOKS = list(iter_notebooks())
LEARNERS = [sys.executable, "course.py", "learners"]
PATTERNS = get_sanitize_patterns((BOOK_DIR / "sanitize.cfg").read_text())
# What the copies must show when run outside the repository (issue 10): the chart from the course's
# saved isolation results, and the demos that run the course's own tests and read its files.
MUST_SHOW = {
    "06_timing_and_plans": ["image/png"],
    "07_putting_it_together": ["pytest exit code: 0", "python -m pytest -n auto", "sanitized outputs equal: True"],
}
MUST_NOT_SHOW = {"06_timing_and_plans": ["No results yet"]}


@pytest.fixture(scope="session")
def copies(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("learner") / "room"
    assert not out.resolve().is_relative_to(ROOT), "the copies must be tried outside the repository"
    done = subprocess.run([*LEARNERS, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def visible_text(cell) -> str:
    """What a reader sees of a cell's outputs, without the volatile parts."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
        elif "text/plain" in out.get("data", {}):
            parts.append(out.data["text/plain"])
    text = "".join(parts)
    for regex, replace in PATTERNS:
        text = re.sub(regex, replace, text)
    return text


def failed(cell) -> bool:
    return any(out.output_type == "error" for out in cell.get("outputs", []))


def test_every_notebook_is_copied_with_its_support_files(copies):
    assert sorted(p.name for p in (copies / "notebooks").glob("*.ipynb")) == [n.book_path.name for n in NOTEBOOKS]
    assert (copies / "conftest.py").read_text() == (ROOT / "conftest.py").read_text()
    settings = (copies / "pyproject.toml").read_text()
    assert "[tool.pytest.ini_options]" in settings and "asyncio_mode" in settings
    assert "jupytext" not in settings, "learner copies must not be paired with notebooks/src"
    assert not list(copies.rglob("*solution*")), "a solutions file was copied"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_copies_have_no_outputs_and_no_solutions(copies, notebook):
    original = notebook.read_book()
    learner = nbformat.read(copies / "notebooks" / notebook.book_path.name, as_version=4)
    nbformat.validate(learner)
    for cell, before in zip(learner.cells, original.cells, strict=True):
        assert cell.cell_type == before.cell_type
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            assert cell.source == before.source, "code must reach learners unchanged"
        assert tags(cell) == tags(before) and "solution" not in tags(cell)
    text = "\n".join(c.source for c in learner.cells)
    for ex_id, ex in notebook.exercises.items():
        assert notebook.cells[ex.solution].source not in text, f"the solution of Exercise {ex_id} is in the copy"
    for link in re.findall(r"\]\((\.\.?/[^)#\s]+)", text):
        target = (copies / "notebooks" / link).resolve()
        assert target.is_relative_to(copies.resolve()), f"link {link} leaves the learner folder"
        assert target.exists(), f"broken link {link} in the copy"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_run_all_then_again_with_the_solutions(copies, notebook):
    path = copies / "notebooks" / notebook.book_path.name
    nb = nbformat.read(path, as_version=4)
    exercises = find_exercises(nb.cells)
    assert list(exercises) == list(notebook.exercises), "the copy lost an exercise"
    solution_after = {ex.stub: notebook.cells[notebook.exercises[ex_id].solution] for ex_id, ex in exercises.items()}
    checkers = {ex.checker: ex_id for ex_id, ex in exercises.items()}
    exercise_cells = {i for ex in exercises.values() for i in (ex.stub, ex.checker, *ex.hints)}
    untouched = copy.deepcopy(nb.cells)  # nbclient writes each executed cell back into nb.cells
    client = notebook_client(nb, path.parent)
    with client.setup_kernel():
        first = copy.deepcopy(untouched)
        for index, cell in enumerate(first):
            client.execute_cell(cell, index)  # CellExecutionError on an error not tagged raises-exception
        for index, ex_id in checkers.items():
            assert failed(first[index]), f"Exercise {ex_id}: the checker passed on the untouched stub"
            assert f"Exercise {ex_id}" in visible_text(first[index]), f"Exercise {ex_id}: no hint names it"

        second = copy.deepcopy(untouched)
        for index, cell in enumerate(second):
            if index in checkers:  # must pass now: an error fails this test
                cell.metadata["tags"] = [t for t in tags(cell) if t != RAISES]
            client.execute_cell(cell, index)
            if index in solution_after:
                answer = nbformat.v4.new_code_cell(solution_after[index].source)
                client.execute_cell(answer, index)
                assert not failed(answer), f"the model answer after cell {index} fails: {visible_text(answer)}"

    for index, ex_id in checkers.items():
        assert "passed" in visible_text(second[index]), f"Exercise {ex_id}: the solution's checker ran no test"
    for index, (a, b) in enumerate(zip(first, second, strict=True)):
        if a.cell_type == "code" and index not in exercise_cells:
            assert visible_text(a) == visible_text(b), f"code cell {index} shows something else on the second Run All"
    shown = "\n".join(str(out) for cell in first if cell.cell_type == "code" for out in cell.outputs)
    for expected in MUST_SHOW.get(notebook.stem, []):
        assert expected in shown, f"{notebook.stem}: the learner copy does not show {expected!r}"
    for unexpected in MUST_NOT_SHOW.get(notebook.stem, []):
        assert unexpected not in shown, f"{notebook.stem}: the learner copy shows {unexpected!r}"


def test_refuses_to_overwrite_a_directory_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = subprocess.run([*LEARNERS, "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "was not made by this tool" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    inside = subprocess.run([*LEARNERS, "--out", str(ROOT / "notebooks")], cwd=ROOT, capture_output=True, text=True)
    assert inside.returncode != 0 and "refusing" in inside.stderr
