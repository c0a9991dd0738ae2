"""Notebook 00 under the course's notebook run (coursebook/pytest_plugin.py), in a pytest of its own.

For tests that prove a check of the run can fail: ``sabotage`` is a module's source, loaded before the
plugin (``-p sabotage``), that breaks something on purpose; the run starts outside the repository and
makes its own server (no COURSEDB_* variables reach it).
"""

from __future__ import annotations

import os

import pytest

from coursebook import NBVAL_ARGS, ROOT, iter_notebooks


def run_notebook_00(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, sabotage: str, select: str):
    """Run the items of notebook 00 that ``-k select`` picks, with ``sabotage`` loaded; pytester's result."""
    pytester.makepyfile(sabotage=sabotage)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), str(ROOT)]))
    for name in [n for n in os.environ if n.startswith("COURSEDB_")]:  # the run picks its own server
        monkeypatch.delenv(name)
    (notebook,) = iter_notebooks(["00"])
    args = ["-p", "sabotage", "-p", "coursebook.pytest_plugin", *NBVAL_ARGS, "-p", "no:xdist", "-p", "no:cacheprovider"]
    args += ["--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "-rf", "-k", select, str(notebook.book_path)]
    return pytester.runpytest_subprocess(*args, timeout=280)
