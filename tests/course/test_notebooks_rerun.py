""" "Run All" twice in the same kernel gives the same result as the first time.

nbval runs each notebook once in a fresh kernel; learners press "Run All" again and again.
"""

import copy
import re

import pytest
from nbval.plugin import get_sanitize_patterns

from coursebook import BOOK_DIR, iter_notebooks, notebook_client

NOTEBOOKS = list(iter_notebooks())
PATTERNS = get_sanitize_patterns((BOOK_DIR / "sanitize.cfg").read_text())


def sanitize(text: str) -> str:
    for regex, replace in PATTERNS:
        text = re.sub(regex, replace, text)
    return text


def visible_text(cell) -> str:
    """What a reader sees of a cell's outputs, without the volatile parts."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
        elif "text/plain" in out.get("data", {}):
            parts.append(out.data["text/plain"])
    return sanitize("".join(parts))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_run_all_twice_in_one_kernel(notebook):
    nb = notebook.read_book()
    client = notebook_client(nb, notebook.book_path.parent)
    passes = []
    with client.setup_kernel():
        for _ in range(2):
            cells = copy.deepcopy(nb.cells)
            for index, cell in enumerate(cells):
                # Raises CellExecutionError on any error not tagged raises-exception.
                client.execute_cell(cell, index)
            passes.append([visible_text(c) for c in cells if c.cell_type == "code"])
    first, second = passes
    for index, (a, b) in enumerate(zip(first, second, strict=True)):
        assert a == b, f"code cell {index} shows something else on the second Run All"
