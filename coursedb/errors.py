"""The one exception type users see from coursedb."""

from __future__ import annotations


class CourseDBError(RuntimeError):
    """A problem the user can fix, described in one or two plain sentences.

    The message is the whole story: callers print ``str(err)`` and nothing else.
    """


def reason(exc: BaseException) -> str:
    """What went wrong, never empty: a timeout's own text is blank."""
    text = str(exc).strip()
    if text:
        return text
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":
        return (
            "the server did not answer in time (frozen or overloaded?); "
            "try again, or restart it with 'python -m coursedb stop'"
        )
    return type(exc).__name__
