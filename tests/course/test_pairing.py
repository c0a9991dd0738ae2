"""Every notebooks/*.ipynb has its source notebooks/src/*.py, and their cells are the same.

Reviewers read the diff of the percent-format .py; this makes that diff trustworthy.
The pair is kept by ``python3 course.py build NN`` (src -> ipynb), not by Jupytext's
JupyterLab pairing, so learners' edits never touch notebooks/src/.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
IPYNBS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted((NOTEBOOKS / "src").glob("[0-9][0-9]_*.py"))


def cells(nb) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert IPYNBS, "no notebooks found"
    assert {p.stem for p in IPYNBS} == {p.stem for p in SOURCES}


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_cells_match_the_source(ipynb):
    source = NOTEBOOKS / "src" / (ipynb.stem + ".py")
    if not source.exists():
        pytest.fail(f"{ipynb.name} has no notebooks/src/{source.name}")
    built = cells(nbformat.read(ipynb, as_version=4))
    written = cells(jupytext.read(source, fmt="py:percent"))
    for index, (a, b) in enumerate(zip(built, written, strict=False)):
        if a != b:
            diff = "\n".join(difflib.unified_diff(b[1].splitlines(), a[1].splitlines(), "src", "ipynb", lineterm=""))
            pytest.fail(
                f"cell {index} of {ipynb.name} differs from notebooks/src/{source.name} "
                f"(type/tags {b[0]}/{b[2]} vs {a[0]}/{a[2]}):\n{diff}\n"
                f"Rebuild: python3 course.py build {ipynb.stem[:2]}",
                pytrace=False,
            )
    assert len(built) == len(written), f"{ipynb.name} has {len(built)} cells, its source {len(written)}"
