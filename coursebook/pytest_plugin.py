"""The pytest plugin of the course's test command (``-p coursebook.pytest_plugin``): its hooks, and only those.

nbval collects every committed notebook; this plugin swaps its collector for coursebook.run's
CourseBook, which runs the notebook the way a learner does and checks everything about it in that one
kernel: nbval's cells (strict nbval), then ``Run All again`` (every cell again; at each checker the
stub, every wrong answer of notebooks/answers/ and the model answer), ``each cell twice`` and the
``connection budget`` (coursebook/run/). The workbench the notebooks share (learner copies outside the
repository, the run's logged server) lives in ``config.stash``; xdist workers get the server's home
in ``workerinput``. ``--dist loadfile`` keeps each notebook's items on one worker, in order, on one
kernel. ``--nbval-only`` leaves nbval alone (strict nbval of the committed notebooks, nothing else).
Every item's time limit stretches with how busy the machine is (coursebook/limits.py); files go to the
workers longest first, and ``-n auto`` says how many workers (coursebook/schedule.py).
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from nbval.plugin import IPyNbFile

from coursebook import limits, schedule
from coursebook.model import BOOK_DIR, SOURCE_NAME
from coursebook.run.book import StrictBook
from coursebook.run.items import CourseBook
from coursebook.run.workbench import WORKBENCH, WORKERINPUT_KEY, Workbench, runs_notebooks


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--nbval-only",
        action="store_true",
        help="run the notebooks under strict nbval alone, in their own folder (what nbval itself does)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(schedule.Schedule(config), "coursebook-schedule")
    if not config.getoption("nbval_only"):
        bench = config.stash[WORKBENCH] = Workbench.for_config(config)
        if bench.owns_server and runs_notebooks(config):
            bench.start_soon()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: each worker runs its notebooks on the server the controller's workbench holds."""
    bench = node.config.stash.get(WORKBENCH, None)
    if bench is not None and bench.server is not None:
        node.workerinput[WORKERINPUT_KEY] = str(bench.server.home)


def pytest_unconfigure(config: pytest.Config) -> None:
    bench = config.stash.get(WORKBENCH, None)
    for problem in bench.close() if bench is not None else ():
        print(f"coursebook: the notebooks' server: {problem}", file=sys.stderr)


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Generator[None, Any, Any]:
    found = yield
    if file_path.parent != BOOK_DIR or not SOURCE_NAME.match(file_path.stem + ".py"):
        return found
    book = StrictBook if parent.config.getoption("nbval_only") else CourseBook
    return [book.from_parent(parent, path=file_path) if type(f) is IPyNbFile else f for f in found]


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    return schedule.workers(config)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    return limits.set_timer(item, settings)


def pytest_report_header(config: pytest.Config) -> str:
    return f"time limits: as written x{limits.stretch():.1f} now ({limits.describe()}; coursebook/limits.py)"
