"""Time limits that stretch with how busy the machine is: the one rule for every limit of the test command.

A limit (pytest-timeout's, per item: the ini's ``timeout``, a ``@pytest.mark.timeout``, an item's own) is
what the item needs on an idle machine, with room to spare. On a machine asked to run more than it has
cores for, everything takes longer in proportion, and a green item must not fail for that: the limit is
multiplied by the load average per core (at least 1, at most ``MAX_STRETCH``), read when the item
starts and again when its time is up (an item that ran into a busy spell gets the rest it is owed). A
hang still fails, only later; the report says how long it was given and how busy the machine was.

An item whose limit is itself the check (it must end before a time a bug would exceed) says so with
``@pytest.mark.exact_timeout``: its limit is kept as written, whatever the load.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

MAX_STRETCH = 8.0  # a hung item fails after at most 8 times its limit, however busy the machine


def stretch() -> float:
    """How many times over its cores the machine is asked for: the larger of the 1- and 5-minute load
    averages (a busy spell that just ended still slowed the item) per core, between 1 and MAX_STRETCH."""
    if not hasattr(os, "getloadavg"):  # Windows: no load average, limits as written
        return 1.0
    load = max(os.getloadavg()[:2])
    return min(MAX_STRETCH, max(1.0, load / (os.cpu_count() or 1)))


def describe() -> str:
    """How busy the machine is, in words, for a report."""
    load = f"load {max(os.getloadavg()[:2]):.1f}" if hasattr(os, "getloadavg") else "no load average"
    return f"{load} on {os.cpu_count()} cores"


def scaled(seconds: float) -> float:
    """``seconds`` (what is enough on an idle machine) stretched for how busy the machine is now."""
    return seconds * stretch()


def set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's timer for ``item``, with the limit stretched now and again when it runs out; None
    (pytest-timeout's own timer, the limit as written) for an item marked ``exact_timeout``."""
    import pytest_timeout

    if item.get_closest_marker("exact_timeout") is not None:
        return None

    limit, started = settings.timeout, time.monotonic()

    def left() -> float:
        return limit * stretch() - (time.monotonic() - started)

    def expire() -> Any:
        waited = f"{time.monotonic() - started:.1f}"
        note = f"{limit:g} s stretched to {waited} s for {describe()}: still running after {waited}"
        return settings._replace(timeout=note)  # pytest-timeout prints "Timeout (>{timeout}s) from …"

    if settings.method == "signal" and threading.current_thread() is threading.main_thread():

        def on_alarm(signum: int, frame: Any) -> None:
            __tracebackhide__ = True
            if (rest := left()) > 0.01:
                signal.setitimer(signal.ITIMER_REAL, rest)
                return
            pytest_timeout.timeout_sigalrm(item, expire())

        def cancel() -> None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, left())
    else:
        done = threading.Event()

        def watch() -> None:
            while not done.wait(max(left(), 0.01)):
                if left() <= 0.01:
                    pytest_timeout.timeout_timer(item, expire())
                    return

        timer = threading.Thread(target=watch, name=f"coursebook.limits {item.nodeid}", daemon=True)

        def cancel() -> None:
            done.set()
            timer.join()

        timer.start()
    item.cancel_timeout = cancel  # pytest-timeout's own cancel hook calls it
    return True
