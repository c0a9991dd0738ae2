"""Build notebooks/src/NN_*.py into executed notebooks/NN_*.ipynb with committed outputs.

Solution cells are dropped first, so the book (and every learner copy made from it) shows each
checker failing on its untouched stub. Cells tagged ``raises-exception`` may fail (the lesson is
the failure); any other error stops the build. A rebuild of unchanged sources changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from coursebook.model import BOOK_DIR, KERNEL, Notebook, notebook_client


def build(notebook: Notebook) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=notebook.book_cells())
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    notebook_client(nb, BOOK_DIR, record_timing=False).execute()
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        cell.id = f"c{index:03d}"  # stable ids: a rebuild's diff shows only real changes
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    nbformat.write(nb, notebook.book_path)
    return notebook.book_path
