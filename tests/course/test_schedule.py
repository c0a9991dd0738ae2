"""The test command hands files to its xdist workers longest first by the last run's record
(coursebook/schedule.py), not most items first; each run of whole files records how long each took."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import psutil
import pytest

from coursebook import ROOT, pytest_plugin, schedule
from coursebook.schedule import NBVAL_ONLY, Schedule, longest_first

pytest_plugins = ["pytester"]


def test_files_go_longest_first_their_items_in_order_and_untimed_files_last():
    ids = ["a.py::1", "a.py::2", "b.py::1", "new.py::1", "c.py::1", "c.py::2", "b.py::2"]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    ordered = longest_first(items, {"a.py": 1.0, "b.py": 30.0, "c.py": 5.0})
    expected = ["b.py::1", "b.py::2", "c.py::1", "c.py::2", "a.py::1", "a.py::2", "new.py::1"]
    assert [i.nodeid for i in ordered] == expected


def finished_run(nbval_only: bool = False, took: dict[str, float] | None = None, **option: str) -> Schedule:
    """The schedule of a run of the course's files (on the controller) that took ``took`` seconds per file."""
    options = SimpleNamespace(**{"keyword": "", "markexpr": "", "loadscopereorder": True, **option})
    plan = Schedule(SimpleNamespace(option=options, rootpath=ROOT, getoption=lambda name: nbval_only))
    for file, seconds in (took or {}).items():
        plan.pytest_runtest_logreport(SimpleNamespace(nodeid=f"{file}::Cell 0", duration=seconds))
    plan.pytest_sessionfinish(None)
    return plan


def test_a_notebook_under_nbval_only_has_a_time_of_its_own(tmp_path, monkeypatch):
    """--quick and CI's Docker pass run the notebooks under strict nbval alone, a fraction of their whole
    check: that time neither replaces the whole check's in the record nor orders a whole run (and back)."""
    monkeypatch.setattr(schedule, "RECORD", tmp_path / "record.json")
    book, test = "notebooks/10_x.ipynb", "tests/a.py"
    schedule.RECORD.write_text(json.dumps({book: 129.0, test: 5.0}))
    finished_run(nbval_only=True, took={book: 12.0, test: 6.0})
    assert json.loads(schedule.RECORD.read_text()) == {book: 129.0, book + NBVAL_ONLY: 12.0, test: 6.0}
    assert finished_run(nbval_only=True).seconds == {book: 12.0, test: 6.0}
    assert finished_run().seconds == {book: 129.0, test: 6.0}


@pytest.mark.parametrize("part", [{"keyword": "long"}, {"markexpr": "slow"}], ids=["-k", "-m"])
def test_a_run_of_part_of_a_file_records_nothing(tmp_path, monkeypatch, part):
    monkeypatch.setattr(schedule, "RECORD", tmp_path / "record.json")
    schedule.RECORD.write_text("{}")
    finished_run(took={"tests/a.py": 1.0}, **part)
    assert json.loads(schedule.RECORD.read_text()) == {}, "a part of a file would record too short a time"


def test_auto_starts_no_more_workers_than_the_files_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "2")  # xdist's own count, whatever this machine has
    for name in ("tests", "notebooks"):
        (tmp_path / name).mkdir()
    for name in ("a.py", "b.ipynb"):
        (tmp_path / name).touch()

    def workers(*args: str) -> int | None:  # what the plugin answers xdist for `-n auto` and these arguments
        config = SimpleNamespace(args=list(args), invocation_params=SimpleNamespace(dir=tmp_path), option=None)
        return pytest_plugin.pytest_xdist_auto_num_workers(config)

    assert workers("tests", "notebooks") is None and workers("tests", "a.py") is None, "folders: xdist's count"
    assert workers("b.ipynb") == workers("a.py::test_x", "a.py::test_y") == 1
    assert workers("a.py", "b.ipynb::Cell 0") == 2
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "1")
    assert workers("a.py", "b.ipynb") == 1, "never more than xdist's own count"


def test_auto_adds_a_worker_for_folders_only_on_a_machine_that_is_not_busy(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2)  # xdist's count: 2 cores
    (tmp_path / "a.py").touch()

    def workers(load: float, *args: str) -> int | None:
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
        option = SimpleNamespace(numprocesses="auto")
        config = SimpleNamespace(args=list(args), invocation_params=SimpleNamespace(dir=tmp_path), option=option)
        return pytest_plugin.pytest_xdist_auto_num_workers(config)

    assert workers(0.5) == workers(1.9, "tests") == 3, "an idle machine: one worker more than its 2 cores"
    assert workers(2.0) is None and workers(9.0, "tests") is None, "a busy one: xdist's count, a worker a core"
    assert workers(0.5, "a.py") == 1, "files named: no more workers than files"
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "2")
    assert workers(0.5) is None, "the variable, when set, decides"


# Each test notes when it started; many_items has the most items (xdist's own order would start it first),
# the record says one_long takes longest. One worker, which orders what it collects by the record the controller
# hands it in workerinput and runs the files in the order they are handed out: the notes show the whole order.
NOTE = """
import pytest
def note(name):
    with open("started.txt", "a") as f:
        f.write(name + "\\n")
"""
MANY = NOTE + "\n@pytest.mark.parametrize('n', range(3))\ndef test_many(n):\n    note('many_items')\n"
LONG = NOTE + "\ndef test_long():\n    note('one_long')\n"
MID = NOTE + "\ndef test_mid():\n    note('one_mid')\n"


def test_the_record_orders_the_files_and_a_whole_run_updates_it(pytester, monkeypatch):
    pytester.makepyfile(test_many_items=MANY, test_one_long=LONG, test_one_mid=MID)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")  # pytest-asyncio warns without
    record = pytester.path / "record.json"
    record.write_text(json.dumps({"test_one_long.py": 50.0, "test_one_mid.py": 40.0, "test_many_items.py": 0.1}))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), str(ROOT)]))
    monkeypatch.setenv("COURSEBOOK_DURATIONS", str(record))  # a record of the test's own (the worker's too)
    monkeypatch.setattr(schedule, "RECORD", record)  # for the controller, here: this process imported schedule
    plugins = ["-p", "coursebook.pytest_plugin", "--nbval-only", "-p", "no:cacheprovider"]
    # The controller in this process (a pytest start is what costs), its one worker a process of its own.
    result = pytester.runpytest_inprocess(*plugins, "-n", "1", "--dist", "loadfile")
    result.assert_outcomes(passed=5)
    started = (pytester.path / "started.txt").read_text().split()
    assert started == ["one_long", "one_mid"] + ["many_items"] * 3, f"not longest first by the record: {started}"
    took = json.loads(record.read_text())
    assert took["test_one_long.py"] < 50 and took["test_many_items.py"] != 0.1, f"the run did not record: {took}"
