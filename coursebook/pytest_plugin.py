"""pytest plugin for the course's test command (course.py passes ``-p coursebook.pytest_plugin``).

``--dist loadfile`` keeps every test file on one worker: a notebook's nbval cells share one kernel,
and a module's fixtures are set up once. The learner-copy run of each notebook is a test of its
own in one file, though, and eight of those queued on one worker would be the whole run's critical
path. This scheduler is loadfile except that each of those tests is a unit of its own.
"""

from __future__ import annotations

from typing import Any

import pytest

# Tests (node id prefixes) that each get a worker of their own instead of their file's.
SPREAD = ("tests/course/test_learner_copies.py::test_run_all_then_again_with_the_solutions[",)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None  # xdist's own choice
    from xdist.scheduler import LoadScopeScheduling

    class CourseScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.startswith(SPREAD) else nodeid.split("::", 1)[0]

    return CourseScheduling(config, log)
