"""Helpers for tests that start, break and stop PostgreSQL servers of their own.

Such a test never touches the shared server other tests and notebooks use: it gets a
private ``COURSEDB_HOME`` (a short path in /tmp, since a Unix socket path must stay under
~100 characters), drives coursedb through its CLI or API with that home, and stops what it
started in a finalizer, even when the test fails. It only ever kills processes it started
itself, or PostgreSQL processes working in its own private home.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
import pytest

# The private-server primitives are coursebook's (benchmarks and the notebook run use them too);
# tests import them from here, as they always have.
from coursebook.servers import (  # noqa: F401
    PrivateServer,
    cleanup,
    cli,
    env_for,
    make_home,
    server_processes,
    settings_for,
)
from coursedb import databases
from coursedb.paths import course_root

ROOT = course_root()
PYTHON = sys.executable
# A pytest of a test's own that runs no notebook: no xdist, and no nbval (it imports nbformat and jsonschema in
# every process: benchmarks/imports.py).
PYTEST_WITHOUT_NOTEBOOKS = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:nbval"]


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """A CLI failure is one readable line, 'coursedb: ...', exit code 2, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    message = lines[0]
    assert message.startswith("coursedb: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def postmasters(home: Path) -> list[psutil.Process]:
    """The live postmaster(s) of ``home``: the processes started with ``-D <home>/data``."""
    data = str(home / "data")
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        alive = proc.info["name"] == "postgres" and proc.info["status"] != psutil.STATUS_ZOMBIE
        if alive and data in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


@dataclass
class TcpServer:
    """A private embedded server that also listens on TCP (tcp_server())."""

    home: Path
    port: int
    admin_url: str
    password: str

    @property
    def url(self) -> str:
        """The superuser over TCP, as a room server's COURSEDB_URL would name it."""
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"


@contextlib.contextmanager
def tcp_server() -> Iterator[TcpServer]:
    """Start a TcpServer in a fresh private home; stopped and deleted afterwards."""
    port = free_port()
    with PrivateServer() as server:
        admin_url = server.start(COURSEDB_PORT=str(port))["admin_url"]
        yield TcpServer(server.home, port, admin_url, (server.home / "password").read_text().strip())


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``where`` with ``options`` (root only), unmounted afterwards; the test is skipped
    where none can be mounted. A small or read-only disk, for the fault tests."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leftovers(home: Path) -> list[str]:
    """What a stopped home still holds: processes, files. Empty means 'nothing left behind'."""
    found = [f"process {p.pid} {' '.join(p.info['cmdline'] or [])}" for p in server_processes(home)]
    if home.exists():
        found += [f"file {path}" for path in sorted(home.rglob("*"))]
    return found


# A process that owns a database, like a notebook kernel: takes its database, leaves a
# transaction open on it, prints the DSN and waits until its stdin closes (then exits
# normally, which drops the database) - or until the test kills it.
OWNER = r"""
import asyncio, sys
import asyncpg, coursedb

async def main():
    url = coursedb.database_url()
    conn = await asyncpg.connect(url)
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("INSERT INTO users (email, name) VALUES ('owner@example.com', 'Owner')")
    print(url, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await transaction.rollback()
    await conn.close()

asyncio.run(main())
"""


def start_owner(
    home: Path, *, cwd: Path = ROOT, launch: Callable[..., subprocess.Popen] = subprocess.Popen, **extra: str | None
) -> tuple[subprocess.Popen, str]:
    """Start an OWNER process on ``home``; return it and the DSN of its database.

    ``launch`` starts it (e.g. inside a namespace); ``cwd`` is where it runs."""
    proc = launch(
        [PYTHON, "-c", OWNER],
        env=env_for(home, **extra),
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = proc.stdout.readline().strip()
    if not url:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"owner process failed: {err}")
    return proc, url


def end_owner(proc: subprocess.Popen, kill: bool = False) -> None:
    """End an OWNER process: normally (closing its stdin) or with SIGKILL."""
    if kill:
        proc.kill()
    else:
        proc.stdin.close()
    proc.wait(timeout=30)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream and not stream.closed:
            stream.close()


def dbname(url: str) -> str:
    return url.split("/")[3].split("?")[0]


def run(coro):
    """Run ``coro`` on a loop of its own in a thread: never disturbs pytest-asyncio's loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def fetch(url: str, sql: str, *args) -> list:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def owned(admin_url: str) -> list:
    """coursedb's own view of the databases it made on the server at ``admin_url``."""
    async with databases.admin_connection(admin_url) as conn:
        return await databases.list_owned(conn)


def wait_until_locked(admin_url: str, name: str, limit: float = 30) -> float:
    """Wait until an owner's session holds ``name``'s lock (again); return how long that took."""
    started = time.monotonic()
    while True:
        listed = {d.name: d for d in run(owned(admin_url))}
        assert name in listed, f"{name} is gone"
        if listed[name].locked:
            return time.monotonic() - started
        assert time.monotonic() - started < limit, f"no session took the lock of {name} within {limit} s"
        time.sleep(0.05)


async def lock_and_create(conn: asyncpg.Connection, name: str) -> None:
    """What an owner does: take the lock its database's name encodes, then create it."""
    from coursedb.names import OWNER_LOCKS, lock_key

    assert await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", OWNER_LOCKS, lock_key(name))
    await conn.execute(f"CREATE DATABASE {name} TEMPLATE {databases.template_name()}")


async def database_names(admin_url: str) -> set[str]:
    return {r["datname"] for r in await fetch(admin_url, "SELECT datname FROM pg_database")}


# A long-lived process that, like a kernel running its first cell, takes a database for each
# home named on its stdin and answers with one JSON line. Imports are paid once, so many
# racing rounds cost only what coursedb does.
RACER = r"""
import json, sys
import coursedb

for line in sys.stdin:
    settings = coursedb.Settings.from_env({"COURSEDB_HOME": line.strip(), "COURSEDB_BACKEND": "embedded"})
    try:
        print(json.dumps({"url": coursedb.database_url(settings)}), flush=True)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
"""


def start_racer() -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-c", RACER],
        env=env_for(Path("/nonexistent")),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """'127.0.0.1:<port>' of an endpoint that accepts connections and never answers (a hung peer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


# `python -m coursedb` with coursedb's bound on a connection attempt (CONNECT_TIMEOUT, 10 s) set to argv[1]:
# the same code and the same sentences, for tests of a server that never answers, which then need not
# wait out the real bound at each attempt.
IMPATIENT = (
    "import sys\n"
    "from coursedb import __main__ as cli, databases, keeper\n"
    "databases.CONNECT_TIMEOUT = keeper.CONNECT_TIMEOUT = float(sys.argv.pop(1))\n"
    "sys.exit(cli.main())\n"
)


def impatient_cli(home: Path, *args: str, seconds: float = 1, **extra: str | None) -> subprocess.CompletedProcess:
    """``cli()`` whose every connection attempt gives up after ``seconds``."""
    return subprocess.run(
        [PYTHON, "-c", IMPATIENT, str(seconds), *args],
        env=env_for(home, **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


ASK_TIMEOUT = 60
# An owner, like a kernel, that calls database_url() each time it is asked (and commits a row on
# 'commit TAG'), printing what it got as one JSON line: the URL, or the one sentence it was told.
ASKER = r"""
import asyncio, json, sys
import asyncpg, coursedb

async def commit(url, tag):
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO users (email, name) VALUES ($1, 'Kept')", tag + "@example.com")
    finally:
        await conn.close()

for line in sys.stdin:
    command = line.split()
    try:
        url = coursedb.database_url()
        if command[0] == "commit":
            asyncio.run(commit(url, command[1]))
        print(json.dumps({"url": url}), flush=True)
    except coursedb.CourseDBError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
"""


class Asker:
    """An owner process (like a kernel) that calls database_url() whenever asked, and says what it got."""

    def __init__(self, home: Path, **extra: str | None) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-c", ASKER], env=env_for(home, **extra), cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def ask(self, command: str = "url") -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        try:
            return json.loads(self.lines.get(timeout=ASK_TIMEOUT))
        except queue.Empty:
            raise AssertionError(f"the owner did not answer {command!r} within {ASK_TIMEOUT} s") from None

    def end(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a suspended one must be able to exit
        end_owner(self.proc, kill=kill)


def run_with_course_fixtures(folder: Path, name: str, tests: str) -> subprocess.CompletedProcess:
    """``tests`` as ``folder/name``, run by a pytest of its own beside the course's conftest.py (the learners'
    fixtures) and the asyncio settings they need; short reports, no CI variable (CI=1 lengthens them)."""
    (folder / "conftest.py").write_text((ROOT / "conftest.py").read_text())
    (folder / name).write_text(tests)
    (folder / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\n"
        "asyncio_default_test_loop_scope = session\n"
    )
    return subprocess.run(
        [*PYTEST_WITHOUT_NOTEBOOKS, "--tb=line", "-rN"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != "CI"}, "PYTHONPATH": str(ROOT)},
    )
