"""Every code cell can be run twice in a row: a learner re-runs a cell (red or green) by reflex.

After the setup cell, each code cell of a notebook runs twice in a row in one kernel; only cells
tagged ``raises-exception`` may fail, on either run. A cell that breaks the notebook's state
when repeated (an aborted transaction left open, a schema dropped twice ...) fails this test.
"""

from __future__ import annotations

import copy

import pytest
from nbclient.exceptions import CellExecutionError

from coursebook import iter_notebooks, notebook_client


@pytest.mark.timeout(600)
@pytest.mark.parametrize("notebook", list(iter_notebooks()), ids=lambda n: n.stem)
def test_each_cell_runs_twice_in_a_row(notebook):
    nb = notebook.read_book()
    client = notebook_client(nb, notebook.book_path.parent)
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            for attempt in ("first", "second"):
                try:
                    # Raises CellExecutionError on any error in a cell not tagged raises-exception.
                    client.execute_cell(copy.deepcopy(cell), index)
                except CellExecutionError as exc:
                    first_line = cell.source.strip().splitlines()[0]
                    pytest.fail(
                        f"{notebook.book_path.name}, cell {index} ({first_line!r}) failed on its {attempt} run: "
                        f"{exc.ename}: {exc.evalue}",
                        pytrace=False,
                    )
