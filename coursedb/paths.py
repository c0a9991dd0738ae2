"""Where the course's files are, from the installed course rather than the working directory.

A notebook may run from notebooks/, from learner copies in learner/notebooks/ or from any folder
`python3 course.py learners --out DIR` wrote to: ``Path.cwd()`` means something else each time.
The course is installed into its .venv in development mode (requirements.txt: ``-e .``), so the
repository is the folder that holds the ``coursedb`` package.
"""

from __future__ import annotations

from pathlib import Path

from .errors import CourseDBError

_MARKER = "course.py"  # only the course's repository has it next to coursedb/


def course_root() -> Path:
    """The course's repository: course.py, conftest.py, notebooks/, tests/, benchmarks/."""
    root = Path(__file__).resolve().parent.parent
    if not (root / _MARKER).is_file():
        raise CourseDBError(
            f"coursedb is installed at {root}, outside the course's repository; "
            "install it with `python3 course.py setup` (an editable install) to use the course's files."
        )
    return root


def course_file(*parts: str) -> Path:
    """A file or folder of the course, e.g. ``course_file("notebooks", "sanitize.cfg")``."""
    return course_root().joinpath(*parts)


def benchmark_results(name: str) -> Path:
    """The saved results of one benchmark, e.g. ``benchmark_results("isolation")`` (may not exist yet)."""
    return course_file("benchmarks", "results", f"{name}.json")
