"""Every notebook stays within the room's connection budget per learner (coursedb.room.BUDGET).

Each notebook runs, solutions included, in a real kernel against a private server that logs every
connection and disconnection; replaying that log counts the most sessions that were open at once,
however briefly (counting, not sampling and not timing). The kernel is the only client of that
server while it runs, so the server's peak is the learner's peak: its liveness session, the setup
cell's admin connection, the notebook's own connections and every %%ipytest cell's pool.
"""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path

import pytest

import coursedb
from coursebook import BOOK_DIR, iter_notebooks, notebook_client
from coursedb import room
from tests.helpers import cleanup, cli, env_for, make_home, settings_for


@pytest.fixture(scope="module")
def logged_server():
    """A private embedded server that logs every session: (home, admin_url, log path)."""
    home = make_home()
    try:
        result = cli(home, "start")
        assert result.returncode == 0, result.stderr
        state = coursedb.status(settings_for(home)).state
        asyncio.run(room.enable_connection_log(state.admin_url))
        yield home, state.admin_url, Path(state.log)
    finally:
        cleanup(home)


def run_and_count(home: Path, log: Path, nb) -> room.Peaks:
    """Run `nb` in a fresh kernel on `home`'s server; the server's peak sessions while it ran."""
    start = log.stat().st_size
    client = notebook_client(nb, cwd=BOOK_DIR)
    client.execute(env=env_for(home))  # raises CellExecutionError on any cell not tagged raises-exception
    # The kernel drops its database as it exits: wait (bounded) until its last session has closed.
    deadline = time.monotonic() + 20
    while True:
        text = log.read_bytes()[start:].decode(errors="replace")
        peaks = room.connection_peaks(text)
        still_open = text.count("connection authorized") - text.count("disconnection: session time")
        if still_open <= 0 or time.monotonic() > deadline:
            return peaks
        time.sleep(0.2)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("notebook", list(iter_notebooks()), ids=lambda nb: nb.stem)
def test_notebook_stays_within_the_connection_budget(logged_server, notebook):
    home, _admin_url, log = logged_server
    # The source, solutions included: a solved checker opens every pool it tests.
    peaks = run_and_count(home, log, copy.deepcopy(notebook.source))
    print(f"peak connections: {peaks.total} ({peaks.sessions} sessions)")
    assert peaks.sessions > 0, "the server logged no session: the count would prove nothing"
    assert peaks.refused == 0
    budget = room.EXCEPTIONS.get(notebook.stem, room.BUDGET)
    assert peaks.total <= budget, (
        f"this notebook had {peaks.total} connections open at once; the room budget is {budget} per learner"
    )
