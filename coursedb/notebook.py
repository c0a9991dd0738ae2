"""What every course notebook runs first: ``from coursedb.notebook import setup; setup()``.

It also provides the course's ``%%ipytest`` magic (ipytest's, run under ``coursedb.kernel``'s
watch: a test that hangs is stopped, an interrupt leaves the kernel usable, a red cell ends in
one line instead of a traceback through the magic), and, as an IPython extension loaded at
kernel start, the hint that a restarted kernel needs the setup cell again.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from asyncpg import InvalidCatalogNameError, TooManyConnectionsError

from . import database_url, hints, room, server
from .errors import CourseDBError

if TYPE_CHECKING:
    import pytest

    from .kernel import Watch

# A test inside a notebook gets this long (pytest-timeout's --timeout, per test, setup to teardown);
# `%%ipytest --timeout 120` changes it for one cell.
CELL_TEST_TIMEOUT = 30
# Only the plugins a notebook's tests use: every installed one (xdist, nbval, pytest-postgresql, ...) would
# be imported by the first %%ipytest cell of each kernel, for nothing (benchmarks/first_ipytest.py).
AUTOLOAD_OFF = "--disable-plugin-autoload"
# -q: short reports; --color=no: nbval compares text, and colour codes are noise there.
IPYTEST_ARGS = [
    "-q", "--tb=short", "--color=no", AUTOLOAD_OFF, "-p", "asyncio", "-p", "timeout", "-p", "no:cacheprovider",
    "-p", "coursedb.pytest_room", "-p", "coursedb.checks", f"--timeout={CELL_TEST_TIMEOUT}",
]  # fmt: skip
# Loaded too once the kernel uses the library: its plugin shows a failing @given test's example.
PLUGINS_OF = {"hypothesis": "hypothesispytest"}
# The module behind each `-p NAME` above, as pytest would find it (an entry point's name, else the module's).
# pytest resolves a `-p NAME` it has not registered yet by reading the entry points of every installed
# distribution (~180 in the course's venv), once per `-p` and %%ipytest run; registered under that name
# first (KernelPlugins), each `-p` finds its plugin there and reads nothing (benchmarks/ipytest_runs.py).
PLUGIN_MODULES = {
    "asyncio": "pytest_asyncio.plugin",
    "timeout": "pytest_timeout",
    "coursedb.pytest_room": "coursedb.pytest_room",
    "coursedb.checks": "coursedb.checks",
    "hypothesispytest": "_hypothesis_pytestplugin",
}
# pytest prints more when it thinks it runs on CI (full assertion diffs, unshortened
# summaries); a notebook must show the same text in a classroom and in CI.
CI_VARIABLES = ("CI", "BUILD_NUMBER")
RESTART_HINT = (
    "coursedb: this kernel has not run the notebook's setup cell since it (re)started, so names "
    "defined above are gone: run the setup cell again, or Run → Run All Above."
)
# IPython reads this file in every kernel of this Python environment (sys.prefix/etc/ipython).
KERNEL_CONFIG_LINE = 'c.InteractiveShellApp.extensions.append("coursedb.notebook")'

_setup_done = False
_last_run: threading.Event | None = None  # set when the last %%ipytest run's pytest has ended


class CellFailed(Exception):
    """A red ``%%ipytest`` cell: IPython shows only this one line under pytest's report."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


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
    global _setup_done
    configure_kernel()
    url = database_url()
    if not _setup_done:  # a later setup() (Run All again) must not freeze what the notebook has made
        _freeze_what_is_loaded()
    _setup_done = True
    print("Ready: this notebook has its own database on the course's PostgreSQL server.")
    print("After a kernel restart, run this cell again first (or Run → Run All Above).")
    problem = hints.course_fixtures_problem(Path.cwd())
    if problem:
        print(f"coursedb: {problem}", file=sys.stderr)
    return url


def _freeze_what_is_loaded() -> None:
    """Leave every object the kernel holds now (its modules, IPython, pytest) out of later garbage collections.

    pytest collects garbage twice as each %%ipytest run ends (its check for exceptions raised in ``__del__``),
    and a collection walks every object the garbage collector tracks: ~70 000 in a kernel after setup,
    about half the CPU of a later %%ipytest run (benchmarks/ipytest_runs.py). These live as long as
    the kernel; what the notebook makes afterwards is collected as before. Garbage already there is freed
    first, not frozen.
    """
    gc.collect()
    gc.freeze()


def configure_kernel() -> None:
    """setup() without the database: ipytest, the course's %%ipytest magic and readable errors."""
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
        shell.register_magic_function(ipytest_magic, magic_kind="cell", magic_name="ipytest")
        _install_kernel_hint()


def ipytest_magic(line: str, cell: str) -> None:
    """``%%ipytest [pytest options]``: run the cell, then its tests, as ipytest does, but safely.

    ``--fails-on-purpose`` marks a cell whose failure the notebook explains.
    """
    import ipytest
    from ipytest._config import current_config
    from ipytest._impl import eval_run_kwargs
    from IPython import get_ipython

    global _last_run
    if _last_run is not None and not _last_run.is_set():  # only after a test that could not be stopped
        raise CellFailed(
            "A test from an earlier cell is still running and cannot be stopped: "
            "restart the kernel (Kernel → Restart Kernel), then run the setup cell again."
        )
    from .kernel import Watch

    args = shlex.split(line)
    kwargs = eval_run_kwargs(cell)
    ipytest.clean(module=kwargs.get("module"))
    get_ipython().run_cell(cell)
    watch = Watch()  # this run's plugin: the timer, the interrupt, the line under the report
    args += [arg for module, plugin in PLUGINS_OF.items() if module in sys.modules for arg in ("-p", plugin)]
    named = KernelPlugins([*kwargs.get("addopts", current_config["addopts"]), *args])
    plugins = [*kwargs.pop("plugins", ()), watch, named]

    def tests() -> int:
        return ipytest.run(*args, run_in_thread=False, raise_on_error=False, plugins=plugins, **kwargs)

    exit_code, interrupted = _run_watched(tests, watch)
    message = watch.verdict(exit_code, interrupted)
    if message and (interrupted or current_config["raise_on_error"]):
        raise CellFailed(message)


ipytest_magic._ipython_magic_no_var_expand = True  # as ipytest's own: {MODULE} is pytest's, not IPython's


class KernelPlugins:
    """A pytest plugin that registers the plugins a run's ``-p NAME`` arguments name (PLUGIN_MODULES), by those names.

    Same plugins, names and order as ``-p`` gives them, without ``-p``'s reading of every installed
    distribution's entry points; a ``-p no:NAME`` later in the arguments still removes one. One trace
    of the difference: the header's ``plugins:`` line (printed from ``-v`` on) lists only plugins pytest
    loaded from entry points itself.
    """

    def __init__(self, args: list[str]) -> None:
        self.names = [name for flag, name in itertools.pairwise(args) if flag == "-p" and name in PLUGIN_MODULES]

    def pytest_addhooks(self, pluginmanager: pytest.PytestPluginManager) -> None:
        # The first hook of a run, called as pytest starts to read its arguments: before any `-p` is resolved.
        for name in self.names:
            if pluginmanager.get_plugin(name) is None and not pluginmanager.is_blocked(name):
                pluginmanager.register(importlib.import_module(PLUGIN_MODULES[name]), name)


def _run_watched(tests: Callable[[], int], watch: Watch) -> tuple[int | None, bool]:
    """Run pytest in a thread; Kernel → Interrupt stops it instead of leaving it behind."""
    global _last_run
    result: list[int] = []
    finished = threading.Event()

    def target() -> None:
        try:
            result.append(tests())
        finally:
            finished.set()

    streams = sys.stdout, sys.stderr
    thread = threading.Thread(target=target, name="ipytest", daemon=True)
    _last_run = finished
    interrupted = False
    thread.start()
    try:
        # Poll with sleep, not Thread.join: a join interrupted by KeyboardInterrupt can leave the
        # Thread object believing it has ended (CPython issue 90882).
        try:
            while not finished.is_set() and not watch.stuck:
                time.sleep(0.05)
        except KeyboardInterrupt:
            interrupted = True
            watch.interrupt()
            while not finished.is_set() and not watch.stuck:
                time.sleep(0.05)
    finally:
        if not finished.is_set() or (sys.stdout, sys.stderr) != streams:
            # pytest still holds (or never gave back) the output streams: later prints must show.
            sys.stdout, sys.stderr = streams
    return (result[0] if result else None), interrupted


def _install_kernel_hint() -> None:
    """Have later kernels of this environment load this module as an extension (see RESTART_HINT).

    This kernel has just run the setup cell; the next one, after a restart, will not have.
    Best effort: an environment we may not write to simply goes without the hint.
    """
    config = Path(sys.prefix) / "etc" / "ipython" / "ipython_kernel_config.py"
    try:
        text = config.read_text() if config.exists() else ""
        if KERNEL_CONFIG_LINE not in text:
            config.parent.mkdir(parents=True, exist_ok=True)
            note = "# coursedb: after a kernel restart, say that the setup cell must run again.\n"
            separator = "\n" if text and not text.endswith("\n") else ""
            config.write_text(f"{text}{separator}{note}{KERNEL_CONFIG_LINE}\n")
    except OSError:
        pass  # a read-only Jupyter config: the restart note is a convenience, the course works without it


def load_ipython_extension(shell) -> None:
    """Loaded at kernel start: until setup() runs, a NameError or a missing %%ipytest says what to do."""

    def after_cell(result) -> None:
        error = result.error_in_exec or result.error_before_exec
        if _setup_done or error is None:
            return
        if isinstance(error, NameError) or "ipytest" in str(error):
            print(RESTART_HINT, file=sys.stderr)

    shell.events.register("post_run_cell", after_cell)


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
