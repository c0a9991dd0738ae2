"""Learner copies: what `python3 course.py learners --out DIR` writes, read without a kernel.

The copies are RUN by the course's test command: every notebook's strict nbval pass and its "Run
All again" pass (each cell twice, every exercise answered wrong and right) run in a kernel started
in a folder of learner copies outside the repository (coursebook/pytest_plugin.py). Here: the copies
hold every notebook with the support files, no outputs and no solutions, and links that work.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from coursebook import ROOT, iter_notebooks, tags
from coursebook.__main__ import main as coursebook_main

NOTEBOOKS = list(iter_notebooks())
LEARNERS = [sys.executable, "course.py", "learners"]


@pytest.fixture(scope="session")
def copies(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("learner") / "room"
    assert not out.resolve().is_relative_to(ROOT), "the copies must be tried outside the repository"
    done = subprocess.run([*LEARNERS, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def test_every_notebook_is_copied_with_its_support_files(copies):
    assert sorted(p.name for p in (copies / "notebooks").glob("*.ipynb")) == [n.book_path.name for n in NOTEBOOKS]
    assert (copies / "conftest.py").read_text() == (ROOT / "conftest.py").read_text()
    settings = (copies / "pyproject.toml").read_text()
    assert "[tool.pytest.ini_options]" in settings and "asyncio_mode" in settings
    assert "jupytext" not in settings, "learner copies must not be paired with notebooks/src"
    assert not list(copies.rglob("*solution*")), "a solutions file was copied"
    stray = [str(p.relative_to(copies)) for p in (copies / "notebooks").iterdir() if p.suffix != ".ipynb"]
    assert not stray, f"not a notebook, in the learners' notebooks/ (answer catalogues, sources?): {stray}"


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


def test_refuses_to_overwrite_a_directory_it_did_not_make(tmp_path, capsys):
    # coursebook's own command in this process (course.py's way to it is the fixture's, above)
    (tmp_path / "precious.txt").write_text("keep me")
    assert coursebook_main(["learners", "--out", str(tmp_path)]) == 2
    assert "was not made by this tool" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert coursebook_main(["learners", "--out", str(ROOT / "notebooks")]) == 2
    assert "refusing" in capsys.readouterr().err
