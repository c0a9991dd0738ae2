"""The course's notebook model: the one place that finds notebooks, reads their cell tags and
builds, copies and times them (authoring only: not installed for learners).

    from coursebook import iter_notebooks
    for nb in iter_notebooks():                  # notebooks/src/NN_*.py, in order
        nb.stem, nb.source_path, nb.book_path, nb.exercises["2.1"].checker

Run from the repository root: ``python -m coursebook build|learners|timings`` (``course.py``
does). Importing this package needs only the standard library; jupytext, nbformat and nbclient
are imported when a notebook is first read or run.
"""

from coursebook import times
from coursebook.model import (
    BOOK_DIR,
    NBVAL_ARGS,
    RAISES,
    ROOT,
    SOURCE_DIR,
    Exercise,
    Notebook,
    find_exercises,
    iter_notebooks,
    notebook_client,
    tags,
)

__all__ = [
    "BOOK_DIR",
    "NBVAL_ARGS",
    "RAISES",
    "ROOT",
    "SOURCE_DIR",
    "Exercise",
    "Notebook",
    "find_exercises",
    "iter_notebooks",
    "notebook_client",
    "tags",
    "times",
]
