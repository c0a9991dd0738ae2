"""Learner copies (python -m coursebook learners): no outputs, no solutions, and they still run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from coursebook import ROOT, iter_notebooks, notebook_client

NOTEBOOKS = list(iter_notebooks())
TOOL = [sys.executable, "-m", "coursebook", "learners"]


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("learner") / "room"
    result = subprocess.run([*TOOL, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return out


def test_every_notebook_is_copied_with_its_support_files(copies):
    assert sorted(p.name for p in (copies / "notebooks").glob("*.ipynb")) == [n.book_path.name for n in NOTEBOOKS]
    assert (copies / "conftest.py").read_text() == (ROOT / "conftest.py").read_text()
    settings = (copies / "pyproject.toml").read_text()
    assert "[tool.pytest.ini_options]" in settings and "asyncio_mode" in settings
    assert "jupytext" not in settings, "learner copies must not be paired with notebooks/src"
    assert not list(copies.rglob("solutions")), "a solutions directory was copied"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_copies_have_no_outputs_and_no_solutions(copies, notebook):
    original = notebook.read_book()
    copy = nbformat.read(copies / "notebooks" / notebook.book_path.name, as_version=4)
    nbformat.validate(copy)
    assert [c.cell_type for c in copy.cells] == [c.cell_type for c in original.cells]
    for cell, before in zip(copy.cells, original.cells, strict=True):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            assert cell.source == before.source, "code must reach learners unchanged"
        assert cell.metadata.get("tags", []) == before.metadata.get("tags", [])
        assert "solution" not in cell.metadata.get("tags", [])
    text = "\n".join(c.source for c in copy.cells)
    for ex_id, ex in notebook.exercises.items():
        assert notebook.cells[ex.solution].source not in text, f"the solution of Exercise {ex_id} is in the copy"
    for link in re.findall(r"\]\((\.\.?/[^)#\s]+)", text):
        assert (copies / "notebooks" / link).resolve().exists(), f"broken link {link} in the copy"


def test_a_copy_opens_and_runs(copies):
    """Cells run top to bottom; only cells tagged raises-exception (the unsolved checkers) may fail."""
    path = copies / "notebooks" / "00_start_here.ipynb"
    nb = nbformat.read(path, as_version=4)
    notebook_client(nb, path.parent).execute()  # nbclient lets exactly the raises-exception cells fail
    outputs = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Ready: this notebook has its own database" in outputs
    checkers = [c for c in nb.cells if "checker" in c.metadata.get("tags", [])]
    assert checkers and all(any(o.output_type == "error" for o in c.outputs) for c in checkers), (
        "an unsolved exercise's checker passed in the learner copy"
    )


def test_refuses_to_overwrite_a_directory_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = subprocess.run([*TOOL, "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "was not made by this tool" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    inside = subprocess.run([*TOOL, "--out", str(ROOT / "notebooks")], cwd=ROOT, capture_output=True, text=True)
    assert inside.returncode != 0 and "refusing" in inside.stderr
