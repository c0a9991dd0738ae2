"""Cell tags of the course's conventions (docs/maintainers.md), and how to read them off a cell."""

from __future__ import annotations

from typing import Any

# The exercise convention: the `exercise` metadata key says which exercise a tagged cell belongs to.
EXERCISE, SOLUTION, CHECKER, HINT = "exercise", "solution", "checker", "hint"
RAISES = "raises-exception"  # a cell that fails on purpose (nbval, the builds and the run allow it)
NAVIGATION = "navigation"  # generated previous / contents / next cell at the end of each book
PROGRESS = "progress"  # the learner's own progress (coursedb.progress.show): it shows their checker runs


class CourseBookError(Exception):
    """A course file is not as the authoring tools expect: the message says which and what to do."""


def tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))
