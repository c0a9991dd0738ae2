"""A red %%ipytest cell reads like pytest: the report, then one line that says what the red means.

- The convention behind that line: a cell that fails on purpose (tagged ``raises-exception``,
  not a checker) says so with ``%%ipytest --fails-on-purpose``; a checker or any other cell
  that fails says the answer is not right yet.
- The built notebooks show exactly one line under the report, no traceback through ipytest.
- Strict nbval still fails a notebook whose cells turn green where they were red, or red
  where they were green (the line is the cell's error output, compared like any other).
"""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from coursebook import BOOK_DIR, RAISES, ROOT, iter_notebooks, notebook_client, tags

NOTEBOOKS = list(iter_notebooks())
ON_PURPOSE = "--fails-on-purpose"


def ipytest_cells(cells):
    for index, cell in enumerate(cells):
        if cell.cell_type == "code" and cell.source.startswith("%%ipytest"):
            yield index, cell


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_cells_that_fail_on_purpose_say_so(notebook):
    for index, cell in ipytest_cells(notebook.cells):
        magic_line = cell.source.splitlines()[0]
        pitfall = RAISES in tags(cell) and "checker" not in tags(cell)
        assert (ON_PURPOSE in magic_line) == pitfall, (
            f"{notebook.source_path.name}, cell {index}: a %%ipytest cell tagged raises-exception that is not a "
            f"checker starts with '%%ipytest {ON_PURPOSE}', and no other cell does"
        )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_red_cells_end_in_one_line(notebook):
    for index, cell in ipytest_cells(notebook.read_book().cells):
        for output in cell.outputs:
            if output.output_type != "error":
                continue
            where = f"{notebook.book_path.name}, cell {index}"
            assert output.traceback == [output.evalue], f"{where}: a traceback under the pytest report"
            expected = "expected here" if ON_PURPOSE in cell.source.splitlines()[0] else "not right yet"
            assert expected in output.evalue, f"{where}: {output.evalue}"


SETUP = "from coursedb.notebook import configure_kernel\n\nconfigure_kernel()"  # setup() without a database
GREEN = "%%ipytest\ndef test_green():\n    assert True\n"
RED = "%%ipytest\ndef test_red():\n    assert False\n"


@pytest.mark.timeout(600)
def test_strict_nbval_still_sees_red_and_green(tmp_path):
    """Record a red (raises-exception) and a green cell as `course.py build` does; then strict nbval
    passes the notebook as recorded, and fails it when the red cell turns green or the green one red."""
    recorded = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP)])
    recorded.cells.append(nbformat.v4.new_code_cell(RED, metadata={"tags": ["raises-exception"]}))
    recorded.cells.append(nbformat.v4.new_code_cell(GREEN))
    notebook_client(recorded, tmp_path).execute()
    variants = {"as_recorded": (RED, GREEN), "red_turned_green": (GREEN, GREEN), "green_turned_red": (RED, RED)}
    for name, (first, second) in variants.items():
        nb = nbformat.from_dict(recorded)
        nb.cells[1].source, nb.cells[2].source = first, second
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    # One nbval run of the three (one pytest start, a kernel each): each file's items say how it fared. The
    # course's settings as before; the rootdir here, so the items are named after the files.
    command = [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist"]
    command += ["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)]
    command += ["--nbval", "--nbval-sanitize-with", str(BOOK_DIR / "sanitize.cfg")]
    command += [f"{name}.ipynb" for name in variants]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    failed = {line.split()[1].split("::")[0] for line in done.stdout.splitlines() if line.startswith("FAILED ")}
    passed = {line.split()[1].split("::")[0] for line in done.stdout.splitlines() if line.startswith("PASSED ")}
    assert passed >= set(f"{name}.ipynb" for name in variants), done.stdout[-3000:]  # every notebook ran
    assert "as_recorded.ipynb" not in failed, done.stdout[-3000:]
    assert "red_turned_green.ipynb" in failed, "a raises-exception cell that passes must fail nbval"
    assert "green_turned_red.ipynb" in failed, "an untagged cell that fails must fail nbval"
