"""A real kernel records every checker run (``%%ipytest --exercise N.M``): its verdict and the checks that
failed, with what each said. Not a cell without the marker, not a run the learner interrupted, not one
whose tests could not run."""

from __future__ import annotations

import pytest

from coursebook.model import iter_notebooks
from coursedb import progress
from tests.helpers.kernel import SETUP, Kernel

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.ENV, str(tmp_path / "progress"))  # the kernel inherits it
    return progress.FileStore(tmp_path / "progress")


def test_a_kernel_records_each_checker_run(store):
    (notebook,) = iter_notebooks(["03"])
    exercise = notebook.exercises["3.2"]
    checker = notebook.cells[exercise.checker].source
    assert checker.startswith("%%ipytest --exercise 3.2")
    with Kernel() as kernel:
        assert kernel.run(SETUP).status == "ok"
        kernel.run(notebook.cells[exercise.stub].source)
        assert kernel.run(checker).status == "error"  # the stub: every check fails
        kernel.run(notebook.cells[exercise.solution].source)
        assert kernel.run(checker).status == "ok"
        plain = "%%ipytest\ndef test_plain():\n    assert False\n"  # no marker: not an exercise's run
        assert kernel.run(plain).status == "error"
        slow = "%%ipytest --exercise 3.2\nimport asyncio\n\nasync def test_waits():\n    await asyncio.sleep(60)\n"
        interrupted = kernel.run(slow, interrupt_after=3)
        assert "interrupted" in interrupted.stdout + interrupted.stderr + interrupted.error_text
        broken = "%%ipytest --exercise 3.2\nimport pytest\n\n@pytest.fixture(scope='nonsense')\ndef f(): ...\n"
        said = kernel.run(broken + "def test_uses(f):\n    pass\n")  # its tests cannot run: nobody tried 3.2
        assert "could not run the tests" in said.error_text
        kernel.run("from coursedb import progress; progress.flush()")
    runs = store.read()
    assert [(o.exercise, o.passed) for o in runs] == [("3.2", False), ("3.2", True)], runs
    checks = [f.check for f in runs[0].failed]
    assert "test_rows_of_one_transaction_tie_on_created_at" in checks and len(checks) == len(set(checks))
    assert all("Exercise 3.2" in f.said for f in runs[0].failed), runs[0].failed  # the stub's own sentence
    assert runs[1].failed == ()
