"""Learner copies of the notebooks: no outputs, no solutions, ready to open and run.

    DIR/notebooks/NN_*.ipynb  the built books with outputs and execution counts cleared; tags
                              (exercise, checker, raises-exception ...) kept; solution cells were
                              never in the book
    DIR/conftest.py           the course fixtures, so %%ipytest cells work
    DIR/pyproject.toml        only the pytest settings (no Jupytext pairing for learners)
    DIR/course/...            reading copies of the course files the notebooks link to
                              (../coursedb/codecs.py becomes ../course/coursedb/codecs.py), so every
                              link works in a JupyterLab rooted at DIR; the code that runs is the
                              installed course's (coursedb.paths), never these copies

The copies run from any folder: every path a notebook uses comes from the installed course. DIR
is replaced as a whole on every run, so it refuses a DIR it did not make.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coursebook import times
from coursebook.cells import SOLUTION, CourseBookError, tags
from coursebook.model import BOOK_DIR, ROOT, iter_notebooks

MARKER = ".learner-copies"
RELATIVE_LINK = re.compile(r"\]\(\.\./([^)#\s]+)")  # a Markdown link's target: ](../coursedb/codecs.py)
READING_COPIES = "course"  # not an importable name: these files must never shadow the installed coursedb
README = """# Learner copies of the course notebooks

Made by `python3 course.py learners`: no outputs, no solutions. Open
`notebooks/00_start_here.ipynb` in JupyterLab (`python3 course.py lab --learner` in the course's
repository opens this folder) and run the cells from the top. The course's Python environment
must be active: these notebooks use the installed course, wherever this folder is.

## The notebooks

{table}
"""


def pytest_settings() -> str:
    """The [tool.pytest.ini_options] table of the course's pyproject.toml, verbatim."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r"^\[tool\.pytest\.ini_options\]\n.*?(?=^\[|\Z)", text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise CourseBookError("pyproject.toml has no [tool.pytest.ini_options]")
    return "# pytest settings of the course (copied from its pyproject.toml)\n" + match.group(0).rstrip() + "\n"


def learner_notebook(book: Any, out: Path) -> Any:
    """The built book without outputs; links to course files point at reading copies made in `out`."""
    from nbconvert.preprocessors import ClearOutputPreprocessor

    book, _ = ClearOutputPreprocessor().preprocess(book, {})
    book.cells = [c for c in book.cells if SOLUTION not in tags(c)]

    def repoint(match: re.Match) -> str:
        target = match.group(1)
        if (out / target).exists():  # conftest.py, pyproject.toml: already next to notebooks/
            return match.group(0)
        source = ROOT / target
        if not source.is_file():
            raise CourseBookError(f"a notebook links to ../{target}, which the course does not have.")
        copy = out / READING_COPIES / target
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        return f"](../{READING_COPIES}/{target}"

    for cell in book.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "markdown":
            cell.source = RELATIVE_LINK.sub(repoint, cell.source)
    return book


def make(out: Path, prefixes: Iterable[str] = ()) -> list[Path]:
    out = out.resolve()
    if out == ROOT or ROOT.is_relative_to(out) or out.is_relative_to(BOOK_DIR):
        raise CourseBookError(f"refusing to write learner copies into {out}; choose a directory of its own")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise CourseBookError(f"{out} exists and was not made by this tool; choose another --out")
    notebooks = list(iter_notebooks(prefixes))
    if not notebooks:
        raise CourseBookError(f"no notebook matches {list(prefixes)}")
    shutil.rmtree(out, ignore_errors=True)
    (out / "notebooks").mkdir(parents=True)
    (out / MARKER).write_text("made by python3 course.py learners; replaced on every run\n")
    shutil.copy(ROOT / "conftest.py", out / "conftest.py")
    (out / "pyproject.toml").write_text(pytest_settings())
    (out / "README.md").write_text(README.format(table=times.table(notebooks, link_prefix="notebooks/")))
    written = []
    for notebook in notebooks:
        import nbformat

        target = out / "notebooks" / notebook.book_path.name
        nbformat.write(learner_notebook(notebook.read_book(), out), target)
        written.append(target)
    return written
