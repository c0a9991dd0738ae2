"""Every notebooks/*.ipynb is built from its notebooks/src/*.py, and their cells are the same
(solution cells excepted: the build leaves them out).

Reviewers read the diff of the percent-format .py; this makes that diff trustworthy.
The pair is kept by ``python3 course.py build NN`` (src -> ipynb), not by Jupytext's
JupyterLab pairing, so learners' edits never touch notebooks/src/.
"""

from __future__ import annotations

import difflib

import pytest

from coursebook import BOOK_DIR, iter_notebooks

NOTEBOOKS = list(iter_notebooks())


def cells(cell_list) -> list[tuple[str, str, list[str], str | None]]:
    return [(c.cell_type, c.source, list(c.metadata.get("tags", [])), c.metadata.get("exercise")) for c in cell_list]


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert NOTEBOOKS, "no notebooks found"
    books = {p.stem for p in BOOK_DIR.glob("*.ipynb")}
    assert books == {n.stem for n in NOTEBOOKS}, "a notebook without its notebooks/src/*.py, or the reverse"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_cells_match_the_source(notebook):
    if not notebook.book_path.exists():
        pytest.fail(f"{notebook.source_path.name} is not built: python3 course.py build {notebook.stem[:2]}")
    built = cells(notebook.read_book().cells)
    written = cells(notebook.book_cells())
    for index, (a, b) in enumerate(zip(built, written, strict=False)):
        if a != b:
            diff = "\n".join(difflib.unified_diff(b[1].splitlines(), a[1].splitlines(), "src", "ipynb", lineterm=""))
            pytest.fail(
                f"cell {index} of {notebook.book_path.name} differs from notebooks/src/{notebook.source_path.name} "
                f"(type/tags/exercise {b[0]}/{b[2]}/{b[3]} vs {a[0]}/{a[2]}/{a[3]}):\n{diff}\n"
                f"Rebuild: python3 course.py build {notebook.stem[:2]}",
                pytrace=False,
            )
    assert len(built) == len(written), f"{notebook.book_path.name} has {len(built)} cells, its source {len(written)}"
