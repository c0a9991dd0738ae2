"""Fixtures shared by every product's tests (coursedb, reference, course, launch).

``home`` is a private COURSEDB_HOME for tests that start, break or stop servers of their own;
the shared server other tests and notebooks use is never touched by them.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from coursedb import progress
from tests.helpers import cleanup, make_home

# Checker runs in the suite's kernels (and this process) record into a folder of the run's own, never into
# the progress of whoever runs the tests. Processes on a private home record into that home (env_for).
os.environ.setdefault(progress.ENV, tempfile.mkdtemp(prefix="coursedb-progress-tests-"))


@pytest.fixture
def home():
    """A fresh private COURSEDB_HOME, stopped and deleted afterwards even if the test failed."""
    path = make_home()
    yield path
    cleanup(path)
