"""The order the test command hands its files (test files and notebooks) to the xdist workers: longest first.

``--dist loadfile`` keeps each file on one worker and hands files out in collection order; xdist's own
order is most items first, which says little about time (a notebook's "Run All again" is one item that
tries every answer; a fault test is one item that kills a server a dozen times), so a long file with few
items started last and one worker waited for it while the other had nothing to do. Two workers finish
together when the longest files start first and the short ones fill in at the end. Each run of the whole
command records how long each file took (``RECORD``, in the virtual environment; a checkout without one,
like a fresh CI clone, starts from the committed ``SEED``); the next run orders files by it, longest
first (a file never timed comes after the timed ones), each file's items in their own order. The controller
reads the record once and hands it to every worker in ``workerinput``, so all collect the same order.
A notebook under ``--nbval-only`` (``--quick``, CI's Docker pass) does a fraction of its whole check's
work: its time has an entry of its own (``NBVAL_ONLY``), so neither mode's run orders, or overwrites,
the other's.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from coursebook.model import ROOT

SEED = Path(__file__).with_name("durations.json")
# COURSEBOOK_DURATIONS: another record file (a test's own, so it never touches the venv's)
RECORD = Path(os.environ.get("COURSEBOOK_DURATIONS") or Path(sys.prefix) / "coursebook-durations.json")
WORKERINPUT_KEY = "coursebook_durations"
NBVAL_ONLY = " --nbval-only"  # appended to a notebook's entry: its time under strict nbval alone


def read() -> dict[str, float]:
    """Seconds per file of the last recorded run (this venv's record, else the committed seed)."""
    for path in (RECORD, SEED):
        try:
            return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            continue  # no record yet, or not one this code wrote: the next one down
    return {}


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def entry(file: str, nbval_only: bool) -> str:
    """The record's name for ``file``'s time in this mode: a notebook's own under --nbval-only."""
    return file + NBVAL_ONLY if nbval_only and file.endswith(".ipynb") else file


def for_mode(record: dict[str, float], nbval_only: bool) -> dict[str, float]:
    """Seconds per file for a run in this mode: under --nbval-only a notebook's nbval-only time where there
    is one (else its whole check's: long, as before), otherwise the whole check's."""
    seconds = {name: sec for name, sec in record.items() if not name.endswith(NBVAL_ONLY)}
    if nbval_only:
        seconds |= {name.removesuffix(NBVAL_ONLY): sec for name, sec in record.items() if name.endswith(NBVAL_ONLY)}
    return seconds


def workers(config: pytest.Config) -> int | None:
    """How many workers ``-n auto`` starts. No more than the files named on the command line (one notebook's
    check has work for one: a second would only take CPU to start). For a run of folders on a machine that is
    not busy (1-minute load below its cores), a worker more than the cores: the suite spends much of its time
    waiting for servers, kernels and fault windows, and a third worker fills those waits (``--quick`` on 2
    idle cores, back to back: 113.6 s with 3 workers, 132.4 s with 2). On a busy machine it only competes for
    the cores (``--quick`` at load 9–12: 529–564 s with 3, 394–530 s with 2), so xdist's count (a worker a
    core) stays. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when it is set."""
    from xdist.plugin import pytest_xdist_auto_num_workers as xdist_count

    named = {arg.split("::", 1)[0] for arg in config.args}
    if named and all((config.invocation_params.dir / name).is_file() for name in named):
        return min(xdist_count(config), len(named))
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or not hasattr(os, "getloadavg"):
        return None
    cores = xdist_count(config)
    return cores + 1 if os.getloadavg()[0] < cores else None


def longest_first(items: list[pytest.Item], seconds: dict[str, float]) -> list[pytest.Item]:
    """``items`` grouped by file, the files longest first by ``seconds`` (never timed: last), stable."""
    files: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        files[file_of(item.nodeid)].append(item)
    order = sorted(files, key=lambda f: -seconds.get(f, 0.0))  # sorted() is stable: ties keep their order
    return [item for f in order for item in files[f]]


class Schedule:
    """The plugin object (registered by coursebook.pytest_plugin): orders files on xdist workers, and on the
    controller records each file's time at the end of a run of everything it collected."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        workerinput = getattr(config, "workerinput", None)
        self.worker = workerinput is not None
        self.nbval_only = bool(config.getoption("nbval_only"))
        self.seconds = workerinput.get(WORKERINPUT_KEY, {}) if self.worker else for_mode(read(), self.nbval_only)
        self.ran: dict[str, float] = defaultdict(float)
        config.option.loadscopereorder = False  # xdist's most-items-first would undo the order below

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT_KEY] = self.seconds

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if self.worker:  # one process runs in collection order anyway: leave it as people wrote it
            items[:] = longest_first(items, self.seconds)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.worker:
            self.ran[file_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        option = self.config.option
        if self.worker or not self.ran or option.keyword or option.markexpr:
            return  # a part of a file would record too short a time
        if self.config.rootpath != ROOT and "COURSEBOOK_DURATIONS" not in os.environ:
            return  # a pytest of a test's own (pytester), not the course's files
        record = read() | {entry(name, self.nbval_only): round(sec, 2) for name, sec in self.ran.items()}
        try:
            RECORD.write_text(json.dumps(dict(sorted(record.items())), indent=1) + "\n")
        except OSError:
            pass  # a Python whose prefix is not writable: the order falls back to the seed, nothing else changes
