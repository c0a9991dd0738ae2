"""A throwaway PgBouncer in front of a throwaway PostgreSQL (``system_postgres``), from Debian's package.

It listens on 127.0.0.1 on a free port, reads a private config folder in /tmp, and is stopped and
deleted afterwards; only the process this helper started is ever signalled. PgBouncer refuses to
run as root, so as root it runs as the ``postgres`` user (``-u``), like the server behind it.
Every login is trusted (the server behind it trusts its Unix socket too): these are tests of
pooling, not of passwords.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 30
RUN_AS = "postgres"


def executable() -> str | None:
    # Debian installs it in /usr/sbin, which is not on an ordinary user's PATH.
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


def available() -> str | None:
    """None if a PgBouncer can be started here, else why not (for a skip reason)."""
    if executable() is None:
        return "no PgBouncer: pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run does it as root)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root and there is no {RUN_AS!r} user to run PgBouncer as"
    return None


@dataclass
class Bouncer:
    port: int
    folder: Path
    log: Path
    process: subprocess.Popen

    def url(self, user: str, database: str = "postgres") -> str:
        """What a learner's COURSEDB_URL would be: the pooler's port instead of the server's."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def pgbouncer(server_socket_dir: Path, users: list[str], pool_mode: str, **settings: str) -> Iterator[Bouncer]:
    """Start PgBouncer in ``pool_mode`` for the server on ``server_socket_dir``; ``settings`` go in its [pgbouncer]."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer", dir="/tmp"))
    port = _free_port()
    (folder / "users.txt").write_text("".join(f'"{user}" ""\n' for user in users))
    options = {
        "listen_addr": "127.0.0.1",
        "listen_port": str(port),
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": str(folder / "users.txt"),
        "pool_mode": pool_mode,
        "logfile": str(folder / "pgbouncer.log"),
        "pidfile": "",
        "max_client_conn": "200",
        "default_pool_size": "50",
        **settings,
    }
    ini = "[databases]\n"
    ini += f"* = host={server_socket_dir} port=5432\n\n[pgbouncer]\n"
    ini += "".join(f"{key} = {value}\n" for key, value in options.items())
    (folder / "pgbouncer.ini").write_text(ini)
    args = [str(executable()), str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        user = pwd.getpwnam(RUN_AS)
        for path in (folder, *folder.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        args[1:1] = ["-u", RUN_AS]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/tmp")
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(port):
            if process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {process.stderr.read().decode(errors='replace')[-800:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not listen on port {port} within {START_TIMEOUT} s")
            time.sleep(0.05)
        yield Bouncer(port=port, folder=folder, log=folder / "pgbouncer.log", process=process)
    finally:
        if process.poll() is None:
            process.terminate()  # SIGTERM: PgBouncer closes every connection and exits
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)
