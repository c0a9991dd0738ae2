"""A throwaway PostgreSQL from the system's own binaries (Debian's ``initdb``/``pg_ctl`` on PATH).

A room server is usually a stock PostgreSQL with its defaults (max_connections 100), not the
course's embedded one (max_connections 300). Tests and ``benchmarks/room.py`` start one here, in a
private folder in /tmp, listening only on a Unix socket there, and always stop and delete it.
As root, PostgreSQL refuses to run, so the server runs as the system's ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 60
# What a room's learners connect as: an ordinary role that may create databases (coursedb's url backend).
ROOM_ROLE = "room"


@dataclass
class SystemPostgres:
    folder: Path
    superuser_url: str  # postgres, may use the superuser-reserved slots
    room_url: str  # the ROOM_ROLE, as every learner's COURSEDB_URL
    log: Path
    max_connections: int

    @property
    def postmaster_pid(self) -> int:
        return int((self.folder / "data" / "postmaster.pid").read_text().split()[0])


def available() -> str | None:
    """None if a system PostgreSQL can be started here, else why not (for a skip reason)."""
    for tool in ("initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            return f"no system PostgreSQL: {tool} is not on PATH (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


def _as_server_user(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd="/tmp")


@contextlib.contextmanager
def system_postgres(max_connections: int = 100, **settings: str) -> Iterator[SystemPostgres]:
    """Start a stock PostgreSQL (plus ``settings``), logging every connection; stop and delete it after."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    folder = Path(tempfile.mkdtemp(prefix="pgsys", dir="/tmp"))
    data, log = folder / "data", folder / "server.log"
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        folder.chmod(0o755)
        os.chown(folder, user.pw_uid, user.pw_gid)
    started = False
    try:
        result = _as_server_user(
            ["initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"], timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.strip()[-500:]}")
        options = {
            "max_connections": str(max_connections),
            "listen_addresses": "''",
            "unix_socket_directories": f"'{folder}'",
            "port": "5432",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_connections": "on",
            "log_disconnections": "on",
            "log_line_prefix": "'%m [%p] '",
            **settings,
        }
        opts = " ".join(f"-c {k}={v}" for k, v in options.items())
        result = _as_server_user(
            ["pg_ctl", "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", str(START_TIMEOUT), "start"],
            timeout=START_TIMEOUT + 10,
        )
        started = True
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else result.stderr
            raise RuntimeError(f"pg_ctl start failed: {tail.strip()}")
        superuser_url = f"postgresql://postgres@/postgres?host={folder}"
        result = _as_server_user(
            ["psql", "-h", str(folder), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
             "-c", f"CREATE ROLE {ROOM_ROLE} LOGIN CREATEDB"],
            timeout=30,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"creating the room role failed: {result.stderr.strip()}")
        yield SystemPostgres(
            folder=folder,
            superuser_url=superuser_url,
            room_url=f"postgresql://{ROOM_ROLE}@/postgres?host={folder}",
            log=log,
            max_connections=max_connections,
        )
    finally:
        if started:
            _as_server_user(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"], timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
