"""The embedded server's start, as Windows, containers, full disks and impostors meet it.

- Windows: pg_ctl starts the server through cmd.exe, which hands it pg_ctl's stdout and stderr.
  Reproduced here with a pg_ctl that leaves a child holding them: start must not wait for it.
- A container sharing the home runs in another PID namespace: it cannot see the postmaster's
  PID, yet reaches its socket; the server itself vouches that it runs.
- A full disk: a failed start leaves nothing behind.
- TCP (Windows, COURSEDB_TRANSPORT=tcp): asyncpg answers a cleartext password request and the
  server has no TLS, so a local user who takes a crashed server's port receives whatever the
  clients send. That must never log in anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from coursedb import server
from coursedb.backends import embedded
from tests.helpers import (
    assert_one_line_error,
    cli,
    database_names,
    dbname,
    end_owner,
    fetch,
    owned,
    postmasters,
    run,
    settings_for,
    start_owner,
    tmpfs,
)

pytestmark = pytest.mark.skipif(os.name == "nt", reason="fake tools are shell scripts; namespaces and mounts are Linux")


# --- no inherited pipes -----------------------------------------------------------------------

WRAPPER = """#!/bin/sh
exec {real} "$@"
"""
# pg_ctl as Windows runs it: something it starts keeps pg_ctl's stdout and stderr open after
# pg_ctl itself has exited (there, the server under cmd.exe; here, a sleeping child).
PG_CTL_LEAVING_A_CHILD = """#!/bin/sh
sleep 300 &
echo $! > {marks}/holder
exec {real} "$@"
"""


def test_start_returns_while_a_child_of_pg_ctl_keeps_its_output_open(home, monkeypatch):
    real_install = embedded.install
    marks = home / "marks"
    marks.mkdir(mode=0o777)
    marks.chmod(0o777)  # as root, the tools run as the server's own user

    def install_with_fake_pg_ctl(home_: Path, user) -> Path:
        real = real_install(home_, user)
        fake = home_ / "fakebin"
        fake.mkdir(mode=0o755, exist_ok=True)
        for tool in ("initdb", "postgres", "pg_ctl"):
            text = PG_CTL_LEAVING_A_CHILD if tool == "pg_ctl" else WRAPPER
            (fake / tool).write_text(text.format(real=real / tool, marks=marks))
            (fake / tool).chmod(0o755)
        return fake

    monkeypatch.setattr(embedded, "install", install_with_fake_pg_ctl)
    settings = settings_for(home)
    try:
        state = embedded.start(settings)
        holder = int((marks / "holder").read_text())
        assert psutil.pid_exists(holder), "the child holding pg_ctl's output ended before start returned"
        assert embedded.alive(state)
    finally:
        with contextlib.suppress(Exception):
            os.kill(int((marks / "holder").read_text()), signal.SIGKILL)
        embedded.stop(settings, None)


# --- another PID namespace --------------------------------------------------------------------


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def in_pid_namespace(args: list[str], **popen) -> subprocess.Popen:
    return subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", *args], **popen)


@pytest.mark.skipif(not _unshare_works(), reason="needs 'unshare --pid' (Linux, as root or with user namespaces)")
def test_a_kernel_in_another_pid_namespace_uses_the_running_server(home):
    """A container sharing the home: it sees no postmaster PID, the server answers all the same."""
    assert cli(home, "start").returncode == 0
    state = json.loads((home / "state.json").read_text())
    owner, url = start_owner(home, launch=in_pid_namespace)
    try:
        assert [p.pid for p in postmasters(home)] == [state["pid"]], "a second server was started"
        assert dbname(url) in run(database_names(state["admin_url"]))
        assert json.loads((home / "state.json").read_text())["pid"] == state["pid"]
    finally:
        end_owner(owner)


# --- a full disk ------------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(megabytes: int) -> Iterator[Path]:
    """A tmpfs of ``megabytes`` (needs root): a disk that fills during the first start."""
    mount = Path(f"/tmp/cdbfull{os.getpid()}")
    mount.mkdir(mode=0o711)
    try:
        with tmpfs(mount, f"size={megabytes}m,mode=0711"):
            try:
                yield mount
            finally:
                for proc in postmasters(mount / "home"):
                    proc.kill()
    finally:
        mount.rmdir()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_start_on_a_full_disk_leaves_nothing_behind():
    with small_disk(12) as disk:
        home = disk / "home"
        result = cli(home, "start")
        assert_one_line_error(result, "No space left on device")
        left = [p for p in home.rglob("*") if p.is_file() and p.name not in ("lock", "tools.log")]
        used = sum(p.stat().st_size for p in home.rglob("*") if p.is_file())
        assert left == [] and used < 64 * 1024, (left, used)


# --- an impostor on a crashed server's TCP port -----------------------------------------------


class FakePostgres:
    """Listens on a port and asks every client for its password in clear, as an impostor would."""

    def __init__(self, port: int) -> None:
        self.captured: list[str] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            with client:
                client.settimeout(5)
                with contextlib.suppress(OSError, struct.error):
                    self._talk(client)

    def _talk(self, client: socket.socket) -> None:
        (length,) = struct.unpack("!I", _read(client, 4))
        _read(client, length - 4)  # the startup packet: user, database, application_name
        client.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        kind = _read(client, 1)
        (length,) = struct.unpack("!I", _read(client, 4))
        body = _read(client, length - 4)
        if kind == b"p":
            self.captured.append(body.rstrip(b"\0").decode())
        fields = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
        client.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)

    def close(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def _read(client: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = client.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def _wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"postmaster {pid} did not die"
        time.sleep(0.05)


@pytest.mark.timeout(180)
def test_an_impostor_on_a_crashed_servers_port_captures_nothing_that_logs_in(home):
    tcp = {"COURSEDB_TRANSPORT": "tcp"}
    assert cli(home, "start", **tcp).returncode == 0
    old = json.loads((home / "state.json").read_text())
    owner, url = start_owner(home, **tcp)  # a kernel: its session reconnects when the server goes
    fake = None
    try:
        for proc in postmasters(home):
            os.kill(proc.pid, signal.SIGKILL)  # the server crashes...
        _wait_dead(old["pid"])
        deadline = time.monotonic() + 10
        while fake is None:  # ...and a local user takes its port as soon as the kernel lets go of it
            try:
                fake = FakePostgres(old["port"])
            except OSError:
                assert time.monotonic() < deadline, f"port {old['port']} stayed taken"
                time.sleep(0.05)
        time.sleep(3)  # the clients reconnect for a while
        # The next start asks the port whether it is our server, then starts a new one elsewhere.
        new = server.ensure(settings_for(home, **tcp))
        assert new.port != old["port"]
        assert fake.captured, "no client talked to the impostor: the test proves nothing"
        for password in set(fake.captured):
            stolen = f"postgresql://postgres:{password}@127.0.0.1:{new.port}/postgres?sslmode=disable"
            with pytest.raises(asyncpg.InvalidPasswordError):
                run(fetch(stolen, "SELECT 1"))
        assert run(fetch(new.admin_url, "SELECT 1"))[0][0] == 1
        # The kernel's session re-read the state and followed the new server: its lock is held there again.
        deadline = time.monotonic() + 30
        while not any(d.name == dbname(url) and d.locked for d in run(owned(new.admin_url))):
            assert time.monotonic() < deadline, "the kernel's session did not follow the new server"
            time.sleep(0.2)
    finally:
        if fake is not None:
            fake.close()
        end_owner(owner, kill=True)


def test_each_start_sets_a_fresh_password(home):
    tcp = {"COURSEDB_TRANSPORT": "tcp"}
    assert cli(home, "start", **tcp).returncode == 0
    first = (home / "password").read_text().strip()
    embedded.kill(settings_for(home, **tcp))
    assert cli(home, "start", **tcp).returncode == 0
    second = json.loads((home / "state.json").read_text())
    assert (home / "password").read_text().strip() != first
    with pytest.raises(asyncpg.InvalidPasswordError):
        run(fetch(f"postgresql://postgres:{first}@127.0.0.1:{second['port']}/postgres?sslmode=disable", "SELECT 1"))
