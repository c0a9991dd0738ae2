"""Fixtures shared by every product's tests (coursedb, reference, course, launch).

``home`` is a private COURSEDB_HOME for tests that start, break or stop servers of their own;
the shared server other tests and notebooks use is never touched by them.
"""

from __future__ import annotations

import pytest

from tests.helpers import cleanup, make_home


@pytest.fixture
def home():
    """A fresh private COURSEDB_HOME, stopped and deleted afterwards even if the test failed."""
    path = make_home()
    yield path
    cleanup(path)
