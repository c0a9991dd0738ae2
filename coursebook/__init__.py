"""The course's authoring layer, above coursedb: the notebook model (the one place that finds notebooks
and reads their cell tags), builds, learner copies, times, the exercise rules, the answer catalogues'
machinery, throwaway servers and the notebook run (not installed for learners).

    from coursebook import iter_notebooks
    for nb in iter_notebooks():                  # notebooks/src/NN_*.py, in order
        nb.stem, nb.source_path, nb.book_path, nb.exercises["2.1"].checker, nb.facts.connections

Run from the repository root: ``python -m coursebook build|check|learners|timings`` (``course.py``
does). jupytext, nbformat and nbclient are imported when a notebook is first read or run.
"""

from coursebook import times
from coursebook.cells import RAISES, tags
from coursebook.commands import NBVAL_ARGS
from coursebook.model import (
    BOOK_DIR,
    ROOT,
    SOURCE_DIR,
    Exercise,
    Notebook,
    find_exercises,
    iter_notebooks,
    notebook_client,
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
