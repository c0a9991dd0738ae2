"""Fault injection against real, private PostgreSQL servers.

Every test here breaks something on purpose: it kills processes, corrupts state, fills
disks. So none of them touches the shared server in /tmp/coursedb-<uid>: each works on a
private COURSEDB_HOME (``home``: fresh per test; ``srv``: one per module, for faults the
server survives), kills only processes it started or that work in that private home, and
stops and deletes the home in a finalizer, even when the test fails. Each test is bounded
by pytest-timeout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import cleanup, cli, make_home


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The faults injected here are POSIX ones (SIGKILL/SIGSTOP, chmod, a root-run server user). On Windows
    # the laptops job checks the course itself; these run on Linux and macOS.
    if os.name != "nt":
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="POSIX fault injection (signals, file modes); runs on Linux and macOS")
    for item in items:
        if here in item.path.parents:
            item.add_marker(skip)


@dataclass
class Server:
    home: Path
    admin_url: str


@pytest.fixture(scope="module")
def srv():
    path = make_home()
    try:
        result = cli(path, "start")
        assert result.returncode == 0, result.stderr
        admin_url = json.loads((path / "state.json").read_text())["admin_url"]
        yield Server(path, admin_url)
    finally:
        cleanup(path)
