"""Throwaway servers for the course's own tests, benchmarks and notebook run: never the shared one.

A ``PrivateServer`` is a private ``COURSEDB_HOME`` (a short path in /tmp: a Unix socket path must
stay under ~100 characters) with an embedded server of its own, driven through coursedb's CLI or
API with that home, stopped and deleted afterwards even when the work failed. It only ever kills
processes it started, or PostgreSQL processes working in its own home.

    with PrivateServer() as server:          # the home exists; the server starts on demand
        server.start()                       # or anything that calls coursedb with server.settings()
        subprocess.run([...], env=server.env())
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

import psutil

from coursedb import Settings, progress
from coursedb.paths import course_root

CLI_TIMEOUT = 60


def make_home() -> Path:
    """A fresh private COURSEDB_HOME, e.g. /tmp/cdbk2j9x1.

    0711: as root the server runs as the 'coursedb' system user, which must be able to
    enter the home (not list it), exactly as it can enter /tmp/coursedb-0.
    """
    home = Path(tempfile.mkdtemp(prefix="cdb", dir="/tmp" if os.path.isdir("/tmp") else None))  # Windows: %TEMP%
    home.chmod(0o711)
    return home


def env_for(home: Path, **extra: str | None) -> dict[str, str]:
    """The environment of a process that uses ``home``; ``NAME=None`` removes a variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSEDB_", "PYTEST_"))}
    env.update(COURSEDB_HOME=str(home), COURSEDB_BACKEND="embedded", PYTHONUNBUFFERED="1")
    # A checker run there records its outcome in the home too, never in the learner's own progress.
    env[progress.ENV] = str(home / "progress")
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def settings_for(home: Path, **extra: str | None) -> Settings:
    return Settings.from_env(env_for(home, **extra))


def cli(home: Path, *args: str, timeout: float = CLI_TIMEOUT, **extra: str | None) -> subprocess.CompletedProcess:
    """``python -m coursedb <args>`` with ``home``; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "coursedb", *args],
        env=env_for(home, **extra),
        cwd=course_root(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def server_processes(home: Path) -> list[psutil.Process]:
    """Live PostgreSQL processes working in ``home`` (zombies are dead and do not count)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        if proc.info["name"] != "postgres" or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            here = any(str(home) in arg for arg in proc.info["cmdline"] or []) or proc.cwd().startswith(str(home))
        except psutil.Error:
            continue
        if here:
            found.append(proc)
    return found


def cleanup(home: Path) -> list[str]:
    """Stop whatever runs in ``home`` and delete it. For finalizers: never raises; returns what went
    wrong on the way (a stop that failed, a process that had to be killed), for the caller to show."""
    problems = []
    if (home / "state.json").exists() or (home / "data").exists() or server_processes(home):
        try:
            stopped = cli(home, "stop", "--force", timeout=30)  # a cleanup: whoever still uses it
            if stopped.returncode != 0:
                problems.append(f"`coursedb stop` failed: {stopped.stderr.strip()[-300:]}")
        except subprocess.TimeoutExpired:
            problems.append("`coursedb stop` did not end within 30 s")
    # Safety net if stop itself is what broke: these processes work in our private home.
    leftovers = server_processes(home)
    for proc in leftovers:
        problems.append(f"killed postgres process {proc.pid} left in {home}")
        try:
            proc.kill()
        except psutil.Error:
            pass  # it ended by itself meanwhile
    psutil.wait_procs(leftovers, timeout=5)
    shutil.rmtree(home, ignore_errors=True)
    return problems


class PrivateServer:
    """A throwaway home with its own embedded server (started on demand); ``with`` cleans it up."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home if home is not None else make_home()

    def env(self, **extra: str | None) -> dict[str, str]:
        return env_for(self.home, **extra)

    def settings(self, **extra: str | None) -> Settings:
        return settings_for(self.home, **extra)

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT, **extra: str | None) -> subprocess.CompletedProcess:
        return cli(self.home, *args, timeout=timeout, **extra)

    def start(self, **extra: str | None) -> dict:
        """Start the server (a no-op if it runs; coursedb takes a lock, so two processes may race here)
        and return its state file: admin_url, log, pid, ..."""
        started = self.cli("start", **extra)
        if started.returncode != 0:
            raise RuntimeError(f"the private server in {self.home} did not start: {started.stderr.strip()}")
        return json.loads((self.home / "state.json").read_text())

    def fresh(self) -> None:
        """Stop the server and empty the home, so the next start is cold again."""
        cleanup(self.home)
        self.home.mkdir()
        self.home.chmod(0o711)

    def cleanup(self) -> list[str]:
        return cleanup(self.home)

    def __enter__(self) -> PrivateServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        problems = self.cleanup()
        if problems:
            print(f"coursebook: cleaning up {self.home}: {'; '.join(problems)}", file=sys.stderr)
