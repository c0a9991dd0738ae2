"""What the run's notebooks share: learner copies outside the repository (a folder per notebook) and, on
the embedded backend, the run's own logged server.

The first process of the run (the xdist controller, or the only one) makes a private home
(coursebook.servers) and hands its path to every xdist worker in ``workerinput``. The first notebook
a process runs starts the server (coursedb takes a lock, so two workers may race to it); each notebook
gets its learner copy when it starts. Every notebook runs on that one server, two at once under xdist, as
learners' kernels share a room's server; it logs every session, so each kernel's connections can be
counted (items.ConnectionBudget).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from coursebook.model import BOOK_DIR
from coursebook.servers import PrivateServer

WORKERINPUT_KEY = "coursebook_server_home"


def counts_connections() -> bool:
    """Only the embedded backend runs on the run's own server; docker or url run on theirs."""
    backend = os.environ.get("COURSEDB_BACKEND", "auto")
    return backend in ("auto", "embedded") and not os.environ.get("COURSEDB_URL")


@dataclass
class Workbench:
    """One process's share of the run. ``server`` is None when the notebooks use the configured server."""

    server: PrivateServer | None
    owns_server: bool = False  # the first process made it, and stops and deletes it
    _root: Path | None = field(default=None, init=False)
    _folders: dict[str, Path] = field(default_factory=dict, init=False)
    _log: Path | None = field(default=None, init=False)
    _started: bool = field(default=False, init=False)
    _early: threading.Thread | None = field(default=None, init=False)
    _early_state: dict | None = field(default=None, init=False)

    @classmethod
    def for_config(cls, config: pytest.Config) -> Workbench:
        home = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
        if home is not None:
            return cls(PrivateServer(Path(home)))
        if hasattr(config, "workerinput") or not counts_connections():
            return cls(None)
        return cls(PrivateServer(), owns_server=True)

    def folder_for(self, notebook: str) -> Path:
        """Learner copies (``course.py learners``) holding ``notebook``, made on first use: a folder per
        notebook, so a run of one notebook copies that one (copying all of them took seconds)."""
        if notebook not in self._folders:
            from coursebook import learners

            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="coursebook-learner-"))
            folder = self._root / notebook / "room"
            learners.make(folder, [notebook])
            self._folders[notebook] = folder
        return self._folders[notebook]

    def start_soon(self) -> None:
        """Start the server in the background now, while xdist starts its workers and they collect (seconds
        each): the first notebook then finds it running instead of waiting for initdb and the start."""
        if self.server is None or self._early is not None:
            return

        def start() -> None:
            try:
                self._early_state = self.server.start()
            except (RuntimeError, OSError, subprocess.SubprocessError):
                pass  # the first notebook starts it again, and its start says what is wrong

        self._early = threading.Thread(target=start, name="coursebook-server-start", daemon=True)
        self._early.start()

    def _start(self) -> None:
        if self._started or self.server is None:
            return
        from coursedb import room

        if self._early is not None:
            self._early.join()
        state = self._early_state or self.server.start()
        asyncio.run(room.enable_connection_log(state["admin_url"]))
        self._log, self._started = Path(state["log"]), True

    @property
    def kernel_env(self) -> dict[str, str] | None:
        """The environment of the run's kernels; None: this process's own (the configured server)."""
        self._start()
        return None if self.server is None else self.server.env()

    @property
    def log(self) -> Path | None:
        """The run's server log, every session in it; None when the notebooks use the configured server."""
        self._start()
        return self._log

    def close(self) -> list[str]:
        """Remove the learner copies, and the server if this process made it; what went wrong, if anything."""
        if self._early is not None:
            self._early.join()  # never remove a home a start is still writing to
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        return self.server.cleanup() if self.server is not None and self.owns_server else []


def runs_notebooks(config: pytest.Config) -> bool:
    """Whether the run's paths (given, or pyproject's testpaths) hold the course's notebooks."""
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path == BOOK_DIR or BOOK_DIR in path.parents or path in BOOK_DIR.parents:
            return True
    return False


WORKBENCH = pytest.StashKey[Workbench]()
