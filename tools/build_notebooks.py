"""Turn notebooks/src/*.py into executed notebooks/*.ipynb with committed outputs.

    python3 course.py build                 every notebook
    python3 course.py build 03 05           only notebooks whose name starts with 03 or 05

Cells tagged ``raises-exception`` may fail (the lesson is the failure); any other error
stops the build. Run it twice: the second run must produce the same outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def build(source: Path) -> Path:
    target = NOTEBOOKS / (source.stem + ".ipynb")
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}},
        record_timing=False,
    )  # fmt: skip
    client.execute()
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        cell.id = f"c{index:03d}"  # stable ids: a rebuild's diff shows only real changes
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    nbformat.write(nb, target)
    return target


def main(prefixes: list[str]) -> int:
    sources = sorted(SOURCES.glob("[0-9][0-9]_*.py"))
    if prefixes:
        sources = [s for s in sources if any(s.name.startswith(p) for p in prefixes)]
    if not sources:
        print("build: no notebook sources match", prefixes, file=sys.stderr)
        return 2
    for source in sources:
        print(f"build: {source.relative_to(ROOT)}", flush=True)
        build(source)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
