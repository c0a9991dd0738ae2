"""Learner copies of the notebooks: no outputs, no solutions, ready to open and run.

    DIR/notebooks/NN_*.ipynb  the built books with outputs and execution counts cleared; tags
                              (exercise, checker, raises-exception ...) kept; solution cells were
                              never in the book
    DIR/conftest.py           the course fixtures, so %%ipytest cells work
    DIR/pyproject.toml        only the pytest settings (no Jupytext pairing for learners)

Links to course files (../coursedb/...) are rewritten to point into this repository. DIR is
replaced as a whole on every run, so it refuses a DIR it did not make.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coursebook.model import BOOK_DIR, ROOT, SOLUTION, iter_notebooks, tags

MARKER = ".learner-copies"
RELATIVE_LINK = re.compile(r"\]\(\.\./([^)#\s]+)")
README = """# Learner copies of the course notebooks

Made by `python3 course.py learners`: no outputs, no solutions. Open
`notebooks/00_start_here.ipynb` in JupyterLab and run the cells from the top.
The course's Python environment (`python3 course.py lab` in the repository) must be active.
"""


def pytest_settings() -> str:
    """The [tool.pytest.ini_options] table of the course's pyproject.toml, verbatim."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r"^\[tool\.pytest\.ini_options\]\n.*?(?=^\[|\Z)", text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise SystemExit("coursebook: pyproject.toml has no [tool.pytest.ini_options]")
    return "# pytest settings of the course (copied from its pyproject.toml)\n" + match.group(0).rstrip() + "\n"


def learner_notebook(book: Any, out_notebooks: Path) -> Any:
    from nbconvert.preprocessors import ClearOutputPreprocessor

    book, _ = ClearOutputPreprocessor().preprocess(book, {})
    book.cells = [c for c in book.cells if SOLUTION not in tags(c)]
    for cell in book.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "markdown":
            continue

        def repoint(match: re.Match) -> str:
            target = match.group(1)
            if target == "conftest.py":  # copied next to the notebooks' parent
                return match.group(0)
            return "](" + Path(os.path.relpath(ROOT / target, out_notebooks)).as_posix()

        cell.source = RELATIVE_LINK.sub(repoint, cell.source)
    return book


def make(out: Path, prefixes: Iterable[str] = ()) -> list[Path]:
    out = out.resolve()
    if out == ROOT or ROOT.is_relative_to(out) or out.is_relative_to(BOOK_DIR):
        raise SystemExit(f"coursebook: refusing to write learner copies into {out}; choose a directory of its own")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise SystemExit(f"coursebook: {out} exists and was not made by this tool; choose another --out")
    notebooks = list(iter_notebooks(prefixes))
    if not notebooks:
        raise SystemExit(f"coursebook: no notebook matches {list(prefixes)}")
    shutil.rmtree(out, ignore_errors=True)
    (out / "notebooks").mkdir(parents=True)
    (out / MARKER).write_text("made by python3 course.py learners; replaced on every run\n")
    shutil.copy(ROOT / "conftest.py", out / "conftest.py")
    (out / "pyproject.toml").write_text(pytest_settings())
    (out / "README.md").write_text(README)
    written = []
    for notebook in notebooks:
        import nbformat

        target = out / "notebooks" / notebook.book_path.name
        nbformat.write(learner_notebook(notebook.read_book(), out / "notebooks"), target)
        written.append(target)
    return written
