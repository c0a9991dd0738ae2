"""What every course notebook runs first: ``from coursedb.notebook import setup; setup()``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from asyncpg import InvalidCatalogNameError, TooManyConnectionsError

from . import database_url, hints, room, server
from .errors import CourseDBError

# -q: short reports; --color=no: nbval compares text, and colour codes are noise there.
IPYTEST_ARGS = ["-q", "--tb=short", "--color=no", "-p", "no:cacheprovider", "-p", "coursedb.pytest_room"]
# pytest prints more when it thinks it runs on CI (full assertion diffs, unshortened
# summaries); a notebook must show the same text in a classroom and in CI.
CI_VARIABLES = ("CI", "BUILD_NUMBER")


def _show_course_error(shell, etype, value, tb, tb_offset=None):  # IPython's custom_exc signature
    # One readable sentence instead of a traceback through coursedb's internals.
    if isinstance(value, CourseDBError):
        message = str(value)
    elif room.full_server_error(value) is not None:  # a full room server: say so, whom to ask
        message = room.full_server_message(value)
    else:
        message = hints.missing_database(value)
    if message is None:
        return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    print(f"coursedb: {message}", file=sys.stderr)
    return None


def setup() -> str:
    """Configure ipytest and readable errors, and make sure this kernel has its own database.

    Returns the DSN of that database. Safe to call again: later calls reuse everything.
    """
    import ipytest
    from IPython import get_ipython

    for name in CI_VARIABLES:
        os.environ.pop(name, None)

    # run_in_thread: the kernel already runs an event loop, async tests need their own.
    # raise_on_error: a red test must make the cell fail, or nbval would stay green.
    ipytest.autoconfig(run_in_thread=True, raise_on_error=True, addopts=IPYTEST_ARGS, coverage=False)
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((CourseDBError, InvalidCatalogNameError, TooManyConnectionsError), _show_course_error)
    url = database_url()
    print("Ready: this notebook has its own database on the course's PostgreSQL server.")
    problem = hints.course_fixtures_problem(Path.cwd())
    if problem:
        print(f"coursedb: {problem}", file=sys.stderr)
    return url


def describe() -> dict:
    """Backend, server version and this kernel's database, for the setup check."""
    info = server.status()
    mine = database_url()
    name = mine.split("/")[3].split("?")[0]
    return {
        "backend": info.state.backend if info.state else None,
        "server": f"PostgreSQL {info.version}",
        "database": name,
    }
