"""Item time limits stretch with how busy the machine is (coursebook/limits.py), and a hang still fails.

A pytest of its own (pytester, in a subprocess: its alarms must not touch this run's) with the course's
plugin and a load average the test sets: on a machine four times over its cores a 1 s limit lets a 2 s
item pass; on an idle one the same item fails, its report naming the limit and the load; a load that
rises during the item is read again when its time is up; and however busy the machine, a hang fails.
"""

from __future__ import annotations

import os

import pytest

from coursebook import ROOT

pytest_plugins = ["pytester"]

CONFTEST = '''
import os

import pytest

PER_CORE = {"now": 1.0}
os.getloadavg = lambda: (PER_CORE["now"] * os.cpu_count(),) * 3


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """The machine's load per core while the item starts: its ``load`` marker."""
    PER_CORE["now"] = item.get_closest_marker("load").args[0]
    return (yield)
'''

ITEMS = """
import time

import pytest

import conftest


@pytest.mark.load(4)
@pytest.mark.timeout(0.5)
def test_busy_machine_item_gets_more_time():
    time.sleep(1)


@pytest.mark.load(0.5)
@pytest.mark.timeout(0.5)
def test_idle_machine_item_keeps_its_limit():
    time.sleep(4)


@pytest.mark.load(1)
@pytest.mark.timeout(0.5)
def test_busy_spell_during_the_item_counts():
    time.sleep(0.25)
    conftest.PER_CORE["now"] = 6
    time.sleep(0.75)


@pytest.mark.load(1000)
@pytest.mark.timeout(0.2)
def test_hang_fails_however_busy():
    time.sleep(5)


@pytest.mark.load(4)
@pytest.mark.exact_timeout
@pytest.mark.timeout(0.5)
def test_exact_limit_is_kept_however_busy():
    time.sleep(3)


# pytest-timeout's other method (a timer thread; where there is no SIGALRM): its timeout ends the process,
# so only items that must pass use it.
@pytest.mark.load(4)
@pytest.mark.timeout(0.5, method="thread")
def test_busy_machine_item_gets_more_time_thread():
    time.sleep(1)


@pytest.mark.load(1)
@pytest.mark.timeout(0.5, method="thread")
def test_busy_spell_during_the_item_counts_thread():
    time.sleep(0.25)
    conftest.PER_CORE["now"] = 6
    time.sleep(0.75)
"""


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_items=ITEMS)
    markers = "markers =\n    load: the load per core the item starts with\n    exact_timeout: as written\n"
    pytester.makeini(f"[pytest]\n{markers}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), str(ROOT)]))
    plugins = ["-p", "coursebook.pytest_plugin", "--nbval-only", "-p", "no:xdist", "-p", "no:cacheprovider"]
    return pytester.runpytest_subprocess(*plugins, "-rA", *args, timeout=60)


def test_limits_stretch_with_the_load_and_a_hang_still_fails(pytester, monkeypatch):
    result = run(pytester, monkeypatch)
    result.assert_outcomes(passed=4, failed=3)
    cores = os.cpu_count()
    result.stdout.fnmatch_lines_random(
        [
            "PASSED test_items.py::test_busy_machine_item_gets_more_time",
            "PASSED test_items.py::test_busy_spell_during_the_item_counts",
            "PASSED test_items.py::test_busy_machine_item_gets_more_time_thread",
            "PASSED test_items.py::test_busy_spell_during_the_item_counts_thread",
            f"E * Timeout (>0.5 s stretched to * s for load {cores * 0.5:.1f} on {cores} cores: still running after *",
            f"E * Timeout (>0.2 s stretched to * s for load {cores * 1000:.1f} on {cores} cores: still running after *",
            "E * Timeout (>0.5s) from pytest-timeout.",  # the exact limit, not stretched for load 4 a core
        ]
    )
