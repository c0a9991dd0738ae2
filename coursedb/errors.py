"""The one exception type users see from coursedb."""

from __future__ import annotations


class CourseDBError(RuntimeError):
    """A problem the user can fix, described in one or two plain sentences.

    The message is the whole story: callers print ``str(err)`` and nothing else.
    """
