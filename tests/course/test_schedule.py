"""The test command hands files to its xdist workers longest first by the last run's record
(coursebook/schedule.py), not most items first; each run of whole files records how long each took."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from coursebook import ROOT
from coursebook.schedule import longest_first

pytest_plugins = ["pytester"]


def test_files_go_longest_first_their_items_in_order_and_untimed_files_last():
    ids = ["a.py::1", "a.py::2", "b.py::1", "new.py::1", "c.py::1", "c.py::2", "b.py::2"]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    ordered = longest_first(items, {"a.py": 1.0, "b.py": 30.0, "c.py": 5.0})
    expected = ["b.py::1", "b.py::2", "c.py::1", "c.py::2", "a.py::1", "a.py::2", "new.py::1"]
    assert [i.nodeid for i in ordered] == expected


# Each test notes when it started; many_items has the most items (xdist's own order would start it first),
# the record says one_long takes longest.
STARTED = """
import time, pytest
def note(name):
    with open("started.txt", "a") as f:
        f.write(name + "\\n")
"""
MANY = STARTED + "\n@pytest.mark.parametrize('n', range(6))\ndef test_many(n):\n    note('many_items')\n"
LONG = STARTED + "\ndef test_long():\n    note('one_long')\n    time.sleep(1)\n"
MID = STARTED + "\ndef test_mid():\n    note('one_mid')\n    time.sleep(1)\n"


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), str(ROOT)]))
    monkeypatch.setenv("COURSEBOOK_DURATIONS", str(pytester.path / "record.json"))
    plugins = ["-p", "coursebook.pytest_plugin", "--nbval-only", "-p", "no:cacheprovider"]
    return pytester.runpytest_subprocess(*plugins, "--dist", "loadfile", *args, timeout=120)


def test_the_record_orders_the_files_and_a_whole_run_updates_it(pytester, monkeypatch):
    pytester.makepyfile(test_many_items=MANY, test_one_long=LONG, test_one_mid=MID)
    record = pytester.path / "record.json"
    record.write_text(json.dumps({"test_one_long.py": 50.0, "test_one_mid.py": 40.0, "test_many_items.py": 0.1}))
    run(pytester, monkeypatch, "-n", "2").assert_outcomes(passed=8)
    first_two = set((pytester.path / "started.txt").read_text().split()[:2])
    assert first_two == {"one_long", "one_mid"}, f"the two longest files by the record did not start first: {first_two}"
    took = json.loads(record.read_text())
    assert took["test_one_long.py"] < 50 and took["test_many_items.py"] != 0.1, f"the run did not record: {took}"

    record.write_text("{}")  # a part of a file (-k) would record too short a time: nothing is recorded
    run(pytester, monkeypatch, "-n", "0", "-k", "long").assert_outcomes(passed=1)  # the one process records
    assert json.loads(record.read_text()) == {}
