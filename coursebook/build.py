"""Build notebooks/src/NN_*.py into executed notebooks/NN_*.ipynb with committed outputs.

Solution cells are dropped first, so the book (and every learner copy made from it) shows each
checker failing on its untouched stub. Cells tagged ``raises-exception`` may fail (the lesson is
the failure); any other error stops the build. A rebuild of unchanged sources changes nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from coursebook.cells import NAVIGATION, tags
from coursebook.model import BOOK_DIR, KERNEL, Notebook, notebook_client, progress_store
from coursedb import progress


def set_ids(cells: list[Any]) -> None:
    for index, cell in enumerate(cells):
        cell.metadata.pop("execution", None)
        # stable ids: a rebuild's diff shows only real changes
        cell.id = "navigation" if NAVIGATION in tags(cell) else f"c{index:03d}"


def build(notebook: Notebook) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=notebook.book_cells())
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    store = progress_store()  # outputs as the notebook run shows them, never the author's own progress
    try:
        notebook_client(nb, BOOK_DIR, record_timing=False).execute(env={**os.environ, progress.ENV: str(store)})
    finally:
        shutil.rmtree(store, ignore_errors=True)
    set_ids(nb.cells)
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    nbformat.write(nb, notebook.book_path)
    return notebook.book_path


def refresh(notebook: Notebook) -> bool:
    """Bring a built book's Markdown (prose, stated time, navigation) up to its source without
    running anything, when its code cells are unchanged; True if the book was rewritten."""
    import nbformat

    if not notebook.book_path.exists():
        return False
    book = notebook.read_book()
    wanted = notebook.book_cells()

    def code(cells: list[Any]) -> list[tuple]:
        return [(c.source, tags(c), c.metadata.get("exercise")) for c in cells if c.cell_type == "code"]

    if code(book.cells) != code(wanted):
        return False  # code changed: only a build (which runs it) can make the outputs
    ran = iter([c for c in book.cells if c.cell_type == "code"])
    cells = [next(ran) if c.cell_type == "code" else c for c in wanted]
    set_ids(cells)
    if [(c.id, c.source, c.metadata) for c in cells] == [(c.id, c.source, c.metadata) for c in book.cells]:
        return False
    book.cells = cells
    nbformat.write(book, notebook.book_path)
    return True
