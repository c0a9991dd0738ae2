"""Every notebooks/*.ipynb is built from its notebooks/src/*.py, and their cells are the same
(solution cells excepted: the build leaves them out).

Reviewers read the diff of the percent-format .py; this makes that diff trustworthy.
The pair is kept by ``python3 course.py build NN`` (src -> ipynb), not by Jupytext's
JupyterLab pairing, so learners' edits never touch notebooks/src/.
"""

from __future__ import annotations

import pytest

from coursebook import BOOK_DIR, ROOT, iter_notebooks, times

NOTEBOOKS = list(iter_notebooks())


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert NOTEBOOKS, "no notebooks found"
    books = {p.stem for p in BOOK_DIR.glob("*.ipynb")}
    assert books == {n.stem for n in NOTEBOOKS}, "a notebook without its notebooks/src/*.py, or the reverse"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_cells_match_the_source(notebook):
    problem = notebook.pairing_problem()
    if problem:
        pytest.fail(problem, pytrace=False)


def test_learner_times_are_the_computed_ones():
    """Each notebook's "About N minutes", the README's and the guide's tables: generated, never pasted."""
    expected = times.expected_files(NOTEBOOKS)
    stale = [str(path.relative_to(ROOT)) for path, text in expected.items() if path.read_text() != text]
    assert not stale, f"learner times out of date in {stale}: run python3 course.py build (or coursebook refresh)"
