"""pytest plugin for the course's test command (course.py passes ``-p coursebook.pytest_plugin``).

With ``--dist loadgroup`` pytest-xdist keeps each group on one worker. Every test file is one
group (what ``--dist loadfile`` did: a notebook's nbval cells share one kernel, and a module's
fixtures are set up once), except tests that name a group of their own: the learner-copy run of
each notebook is one, so the eight heavy runs spread over the workers instead of queueing in one.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
