"""Every learner's laptop: what Windows and macOS need, run here on Linux.

Windows has no ``pwd``, ``grp``, ``fcntl`` or ``os.getuid``, and PostgreSQL there has no Unix socket:
coursedb must import without them and run the embedded server on 127.0.0.1 with a password.
``COURSEDB_TRANSPORT=tcp`` selects that TCP-only path on any system, so it is tested here; GitHub
Actions runs the whole course on macos-14 and windows-latest.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, assert_one_line_error, cleanup, cli, env_for, fetch, free_port, make_home, run

# Blocks what Windows lacks, then imports everything a kernel, the CLI and the fixtures import,
# and reads the settings (the default home is per user there too, without os.getuid).
WINDOWS_LIKE = r"""
import os, sys

class NotHere:
    def find_spec(self, name, path=None, target=None):
        if name in ("pwd", "grp", "fcntl"):
            raise ImportError(f"No module named {name!r} (as on Windows)")

sys.meta_path.insert(0, NotHere())
for name in ("pwd", "grp", "fcntl"):
    sys.modules.pop(name, None)
for name in ("getuid", "geteuid", "getgid"):
    if hasattr(os, name):
        delattr(os, name)

import coursedb, coursedb.__main__, coursedb.notebook, coursedb.backends.embedded, coursedb.backends.docker
from coursedb.settings import Settings
home = Settings.from_env({"USER": "learner", "USERNAME": "learner"}).home
print(home.name, sorted(m for m in ("pwd", "grp", "fcntl") if m in sys.modules))
"""


def test_coursedb_imports_without_pwd_grp_fcntl_or_getuid():
    env = env_for(ROOT, USER="learner", LOGNAME="learner", COURSEDB_HOME=None)
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", WINDOWS_LIKE], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["coursedb-learner", "[]"]


# Collection as on Windows: the modules Windows lacks cannot be imported by the repository's own
# code (psutil and the standard library may still use them on Linux, so only imports made from the
# repository are refused, importorskip's included), and the repository's modules get an os module
# without getuid/geteuid/getgid/getegid (third-party code keeps the real one, as it takes other paths
# on Windows). argv[1]: the folders whose modules count as the repository's, os.pathsep between them.
COLLECT_AS_ON_WINDOWS = r"""
import builtins, os, sys, types
from pathlib import Path

OWN = [Path(folder).resolve() for folder in sys.argv[1].split(os.pathsep)]
MISSING = {"pwd", "grp", "fcntl", "resource", "termios"}
PASS_THROUGH = ("importlib", "_pytest" + os.sep + "outcomes.py")  # importorskip imports for its caller
seen: dict[str, bool] = {}

def from_repository(frame) -> bool:
    while frame is not None and any(part in frame.f_code.co_filename for part in PASS_THROUGH):
        frame = frame.f_back
    name = frame.f_code.co_filename if frame is not None else ""
    if name not in seen:
        path = Path(name).resolve() if name and not name.startswith("<") else None
        seen[name] = path is not None and any(own in path.parents and own / ".venv" not in path.parents for own in OWN)
    return seen[name]

class WindowsOs(types.ModuleType):
    def __getattr__(self, name):
        if name in ("getuid", "geteuid", "getgid", "getegid"):
            raise AttributeError(f"module 'os' has no attribute {name!r} (as on Windows)")
        return getattr(os, name)

windows_os = WindowsOs("os")
real_import = builtins.__import__

def windows_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.partition(".")[0] in MISSING | {"os"} and from_repository(sys._getframe(1)):
        if name == "os":
            return windows_os
        if name.partition(".")[0] != "os":
            raise ModuleNotFoundError(f"No module named {name!r} (as on Windows)", name=name)
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = windows_import

import importlib
real_import_module = importlib.import_module

def windows_import_module(name, package=None):
    if name in MISSING and from_repository(sys._getframe(1)):
        raise ModuleNotFoundError(f"No module named {name!r} (as on Windows)", name=name)
    return real_import_module(name, package)

importlib.import_module = windows_import_module

import pytest
sys.exit(pytest.main(sys.argv[2:]))
"""


# Modules that a Windows collection must refuse (outside the suite: a whole-suite collection running meanwhile
# never sees them), each with the error it must end in.
PROBES = {
    "test_windows_probe_pwd.py": ("import pwd", "No module named 'pwd'"),
    "test_windows_probe_geteuid.py": ("import os\nROOT = os.geteuid() == 0", "has no attribute 'geteuid'"),
}


@pytest.fixture(scope="module")
def windows_collection(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """One pytest --collect-only as on Windows (a start of its own is what costs): the whole suite, and the
    probes from a folder of their own that counts as the repository's. Its output, and its collection errors
    by the probe they name (any other: "suite N")."""
    from course import NBVAL_ARGS

    probes = tmp_path_factory.mktemp("windows_probes")
    for name, (code, _) in PROBES.items():
        (probes / name).write_text(f"{code}\n\n\ndef test_nothing():\n    pass\n")
    own = os.pathsep.join([str(ROOT), str(probes)])
    result = subprocess.run(
        [sys.executable, "-c", COLLECT_AS_ON_WINDOWS, own, "--collect-only", "-q", "-rsE", "-p", "no:cacheprovider",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), "-p", "coursebook.pytest_plugin", *NBVAL_ARGS,
         "tests", "notebooks", *(str(probes / name) for name in PROBES)],
        env=env_for(ROOT), cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    # pytest names a file outside its rootdir "test session" in the header: each error goes by the file it names
    sections = re.split(r"\n_+ ERROR collecting .+ _+\n", result.stdout.split("short test summary info")[0])[1:]
    errors = {next((name for name in PROBES if name in text), f"suite {n}"): text for n, text in enumerate(sections)}
    return result, errors


@pytest.mark.timeout(300)
def test_every_test_file_is_collected_as_on_windows(windows_collection):
    """A Windows run collects every file: POSIX-only tests skip at collection, with their reason."""
    result, errors = windows_collection
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    suite_errors = set(errors) - set(PROBES)
    assert not suite_errors, result.stdout[-6000:] + result.stderr[-3000:]
    assert f"{len(PROBES)} errors" in summary and " collected" in summary, result.stdout[-6000:] + result.stderr[-3000:]


@pytest.mark.timeout(300)
def test_the_windows_collection_check_bites(windows_collection):
    """A test module importing pwd at its top, or calling os.geteuid, is an error under the simulation."""
    result, errors = windows_collection
    for name, (_, error) in PROBES.items():
        assert error in errors.get(name, ""), f"{name} was not refused with {error!r}:\n" + result.stdout[-3000:]


def test_the_transport_setting_is_checked(home):
    result = cli(home, "start", COURSEDB_TRANSPORT="pipe")
    assert_one_line_error(result, "COURSEDB_TRANSPORT='pipe' is not one of auto, unix, tcp")
    result = cli(home, "start", COURSEDB_PULL_TIMEOUT="soon")
    assert_one_line_error(result, "COURSEDB_PULL_TIMEOUT='soon' is not a number of seconds")


# A process of its own: its database lives as long as it does.
COUNT_USERS = """
import asyncio, asyncpg, coursedb
async def main():
    conn = await asyncpg.connect(coursedb.database_url())
    print(await conn.fetchval("SELECT count(*) FROM users"))
    await conn.close()
asyncio.run(main())
"""


NO_UNIX_SOCKETS = pytest.mark.skipif(os.name == "nt", reason="PostgreSQL clients have no Unix sockets on Windows")


@pytest.mark.parametrize("transport", ["tcp", pytest.param("unix", marks=NO_UNIX_SOCKETS)])
def test_a_home_with_spaces_in_its_path(home, transport):
    spaced = home / "my course files"
    spaced.mkdir(mode=0o711)
    try:
        result = cli(spaced, "start", COURSEDB_TRANSPORT=transport)
        assert result.returncode == 0, result.stderr
        query = subprocess.run(
            [sys.executable, "-c", COUNT_USERS],
            env=env_for(spaced, COURSEDB_TRANSPORT=transport),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert query.returncode == 0, query.stderr
        assert query.stdout.strip() == "0"
    finally:
        assert cli(spaced, "stop").returncode == 0


def test_tcp_only_mode_listens_on_loopback_with_a_password_and_no_socket(home):
    result = cli(home, "start", COURSEDB_TRANSPORT="tcp")
    assert result.returncode == 0, result.stderr
    state = json.loads((home / "state.json").read_text())
    password = (home / "password").read_text().strip()
    assert state["admin_url"].startswith(f"postgresql://postgres:{password}@127.0.0.1:")
    pidfile = (home / "data" / "postmaster.pid").read_text().splitlines()
    assert pidfile[4].strip() == "" and pidfile[5].strip() == "127.0.0.1"  # no socket directory; TCP on loopback
    assert list((home / "run").glob(".s.PGSQL.*")) == []
    port = state["admin_url"].rsplit(":", 1)[1].split("/")[0]
    with pytest.raises(Exception, match="password"):
        run(fetch(f"postgresql://postgres@127.0.0.1:{port}/postgres", "SELECT 1"))
    status = cli(home, "status", COURSEDB_TRANSPORT="tcp").stdout
    [tcp] = [line for line in status.splitlines() if line.startswith("tcp url:")]
    assert tcp.startswith(f"tcp url:   postgresql://postgres:***@127.0.0.1:{port}/postgres")
    assert tcp.endswith(f"(password in {home}/password)")


@pytest.mark.timeout(300)
def test_the_reference_suite_passes_in_tcp_only_mode(home):
    """The Windows code path end to end: the reference suite's fixtures on a TCP-only server."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:nbval", "tests/reference"],
        env={**env_for(home, COURSEDB_TRANSPORT="tcp"), "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.strip().splitlines()[-1]
    assert json.loads((home / "state.json").read_text())["admin_url"].startswith("postgresql://postgres:")


def test_status_shows_the_same_fields_on_the_url_backend(home):
    """Backend parity: a server named by COURSEDB_URL reports the fields an embedded one does."""
    port = free_port()
    assert cli(home, "start", COURSEDB_PORT=str(port)).returncode == 0
    embedded = cli(home, "status").stdout
    password = (home / "password").read_text().strip()
    url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
    other = make_home()
    try:
        assert cli(other, "start", COURSEDB_BACKEND="url", COURSEDB_URL=url).returncode == 0
        on_url = cli(other, "status", COURSEDB_BACKEND="url", COURSEDB_URL=url).stdout
    finally:
        cli(other, "stop", COURSEDB_BACKEND="url", COURSEDB_URL=url)
        cleanup(other)

    def labels(out: str) -> list[str]:
        return [line.split(":", 1)[0] for line in out.splitlines() if not line.startswith(" ")]

    assert labels(on_url) == labels(embedded), (on_url, embedded)
    assert "(password in COURSEDB_URL)" in on_url
