"""Make learner copies of the notebooks: no outputs, no solutions, ready to open and run.

    python tools/learner_copies.py                 every notebook, into learner/ (git-ignored)
    python tools/learner_copies.py --out DIR 00 03 only notebooks 00 and 03, into DIR

The repository keeps executed notebooks (nbval compares their outputs) and the solutions
in notebooks/solutions/. Self-paced learners and workshop rooms get copies without either:

    DIR/notebooks/NN_*.ipynb  outputs and execution counts cleared (nbconvert's
                              ClearOutputPreprocessor); tags such as exercise, checker and
                              raises-exception are kept; lines pointing at solutions/ replaced
    DIR/conftest.py           the course fixtures, so %%ipytest cells work
    DIR/pyproject.toml        only the pytest settings (no Jupytext pairing for learners)

Links to course files (../coursedb/...) are rewritten to point into this repository. DIR is
replaced as a whole on every run, so it refuses a DIR it did not make.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
MARKER = ".learner-copies"
NO_SOLUTION = "*Solutions are not part of the learner copy: ask your instructor, or compare with a classmate.*"
SOLUTION_LINE = re.compile(r"solutions/")
RELATIVE_LINK = re.compile(r"\]\(\.\./([^)#\s]+)")
README = """# Learner copies of the course notebooks

Made by `python tools/learner_copies.py`: no outputs, no solutions. Open
`notebooks/00_start_here.ipynb` in JupyterLab and run the cells from the top.
The course's Python environment (`python3 course.py lab` in the repository) must be active.
"""


def pytest_settings() -> str:
    """The [tool.pytest.ini_options] table of the course's pyproject.toml, verbatim."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r"^\[tool\.pytest\.ini_options\]\n.*?(?=^\[|\Z)", text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        raise SystemExit("learner_copies: pyproject.toml has no [tool.pytest.ini_options]")
    return "# pytest settings of the course (copied from its pyproject.toml)\n" + match.group(0).rstrip() + "\n"


def learner_notebook(source: Path, out_notebooks: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(source, as_version=4)
    nb, _ = ClearOutputPreprocessor().preprocess(nb, {})
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "markdown":
            continue
        lines = [NO_SOLUTION if SOLUTION_LINE.search(line) else line for line in cell.source.splitlines()]
        source_text = "\n".join(lines)

        def repoint(match: re.Match) -> str:
            target = match.group(1)
            if target == "conftest.py":  # copied next to the notebooks' parent
                return match.group(0)
            return "](" + Path(os.path.relpath(ROOT / target, out_notebooks)).as_posix()

        cell.source = RELATIVE_LINK.sub(repoint, source_text)
    return nb


def make(out: Path, prefixes: list[str]) -> list[Path]:
    out = out.resolve()
    if out == ROOT or ROOT.is_relative_to(out) or out.is_relative_to(NOTEBOOKS):
        raise SystemExit(f"learner_copies: refusing to write into {out}; choose a directory of its own")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise SystemExit(f"learner_copies: {out} exists and was not made by this tool; choose another --out")
    sources = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        sources = [s for s in sources if any(s.name.startswith(p) for p in prefixes)]
    if not sources:
        raise SystemExit(f"learner_copies: no notebook matches {prefixes}")
    shutil.rmtree(out, ignore_errors=True)
    (out / "notebooks").mkdir(parents=True)
    (out / MARKER).write_text("made by tools/learner_copies.py; replaced on every run\n")
    shutil.copy(ROOT / "conftest.py", out / "conftest.py")
    (out / "pyproject.toml").write_text(pytest_settings())
    (out / "README.md").write_text(README)
    written = []
    for source in sources:
        target = out / "notebooks" / source.name
        nbformat.write(learner_notebook(source, out / "notebooks"), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "learner", help="output directory (default: learner/)")
    parser.add_argument("prefixes", nargs="*", help="only notebooks whose name starts with one of these")
    args = parser.parse_args(argv)
    for path in make(args.out, args.prefixes):
        print(f"learner copy: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
