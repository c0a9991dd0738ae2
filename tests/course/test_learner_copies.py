"""Learner copies (tools/learner_copies.py): no outputs, no solutions, and they still run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TOOL = ROOT / "tools" / "learner_copies.py"


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("learner") / "room"
    result = subprocess.run([sys.executable, str(TOOL), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return out


def solution_bodies(notebook: Path) -> list[str]:
    path = ROOT / "notebooks" / "solutions" / (notebook.stem + ".py")
    if not path.exists():
        return []
    parts = re.split(r"^# %% Exercise \d+\.\d+\s*$", path.read_text(), flags=re.MULTILINE)[1:]
    return [part.strip() for part in parts if part.strip()]


def test_every_notebook_is_copied_with_its_support_files(copies):
    assert sorted(p.name for p in (copies / "notebooks").glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    assert (copies / "conftest.py").read_text() == (ROOT / "conftest.py").read_text()
    settings = (copies / "pyproject.toml").read_text()
    assert "[tool.pytest.ini_options]" in settings and "asyncio_mode" in settings
    assert "jupytext" not in settings, "learner copies must not be paired with notebooks/src"
    assert not list(copies.rglob("solutions")), "a solutions directory was copied"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_copies_have_no_outputs_and_no_solutions(copies, notebook):
    original = nbformat.read(notebook, as_version=4)
    copy = nbformat.read(copies / "notebooks" / notebook.name, as_version=4)
    nbformat.validate(copy)
    assert [c.cell_type for c in copy.cells] == [c.cell_type for c in original.cells]
    for cell, before in zip(copy.cells, original.cells, strict=True):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            assert cell.source == before.source, "code must reach learners unchanged"
        assert cell.metadata.get("tags", []) == before.metadata.get("tags", [])
        assert "solutions/" not in cell.source
    text = "\n".join(c.source for c in copy.cells)
    for body in solution_bodies(notebook):
        assert body not in text, f"a solution from notebooks/solutions/{notebook.stem}.py is in the copy"
    for link in re.findall(r"\]\((\.\.?/[^)#\s]+)", text):
        assert (copies / "notebooks" / link).resolve().exists(), f"broken link {link} in the copy"


def test_a_copy_opens_and_runs(copies):
    """Cells run top to bottom; only cells tagged raises-exception (the unsolved checkers) may fail."""
    path = copies / "notebooks" / "00_start_here.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )  # nbclient lets exactly the raises-exception cells fail
    client.execute()
    outputs = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Ready: this notebook has its own database" in outputs
    checkers = [c for c in nb.cells if "checker" in c.metadata.get("tags", [])]
    assert checkers and all(any(o.output_type == "error" for o in c.outputs) for c in checkers), (
        "an unsolved exercise's checker passed in the learner copy"
    )


def test_refuses_to_overwrite_a_directory_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = subprocess.run([sys.executable, str(TOOL), "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and "was not made by this tool" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    inside = subprocess.run(
        [sys.executable, str(TOOL), "--out", str(ROOT / "notebooks")], capture_output=True, text=True
    )
    assert inside.returncode != 0 and "refusing" in inside.stderr
