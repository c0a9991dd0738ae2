"""Stopping, and homes coursedb cannot write: one sentence each, and nobody's rows lost unasked.

- ``stop`` while kernels hold databases names them and asks for ``--force``; with it, the
  server goes, and each kernel hears of its lost database the next time it asks for it.
- ``start`` and ``stop`` against a server that accepts connections and never answers.
- a COURSEDB_HOME on a read-only disk, or in a folder nobody may write to (an immutable one).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import coursedb
from coursedb import CourseDBError
from tests.helpers import (
    Asker,
    assert_one_line_error,
    cli,
    database_names,
    dbname,
    impatient_cli,
    postmasters,
    run,
    settings_for,
    silent_listener,
    tmpfs,
)

pytestmark = pytest.mark.timeout(120)


def test_stop_with_live_kernels_names_them_and_asks_for_force(home):
    owners = [Asker(home) for _ in range(2)]
    try:
        urls = [owner.ask("commit kept")["url"] for owner in owners]
        admin_url = coursedb.status(settings_for(home)).state.admin_url
        refused = cli(home, "stop")
        message = assert_one_line_error(
            refused,
            "2 notebook kernel(s) or test run(s) still use the embedded server",
            "python -m coursedb stop --force",
        )
        for owner, url in zip(owners, urls, strict=True):
            assert f"python pid {owner.proc.pid} on " in message and dbname(url) in message
        assert postmasters(home) and {dbname(u) for u in urls} <= run(database_names(admin_url))
        assert all(owner.ask() == {"url": url} for owner, url in zip(owners, urls, strict=True))
        with pytest.raises(CourseDBError, match="still use the embedded server"):
            coursedb.stop(settings_for(home))  # the same from Python
        forced = cli(home, "stop", "--force")
        assert forced.returncode == 0, forced.stderr
        assert "the databases of 2 live owner(s) went with it: " in forced.stdout
        assert not postmasters(home)
        # Each kernel hears of it, once, then gets a new, empty database on a new server.
        said = owners[0].ask()["error"]
        assert said.startswith(f"Your database {dbname(urls[0])} is gone, and the rows in it with it: ")
        assert "(made afresh, e.g. after 'python -m coursedb stop')" in said
        again = owners[0].ask()["url"]
        assert again != urls[0]
    finally:
        for owner in owners:
            owner.end()


def test_stop_without_live_kernels_needs_no_force(home):
    owner = Asker(home)
    owner.ask()
    owner.end(kill=True)  # a killed kernel holds nothing: its database goes with the server
    result = cli(home, "stop")
    assert result.returncode == 0, result.stderr
    assert "live owner" not in result.stdout and not postmasters(home)


def test_start_and_stop_against_a_server_that_never_answers(home):
    """Each gives up after its connection attempt's bound (1 s here, 10 s as shipped) in one sentence."""
    with silent_listener() as where:
        url = {"COURSEDB_BACKEND": "url", "COURSEDB_URL": f"postgresql://u:secret@{where}/postgres"}
        started = assert_one_line_error(impatient_cli(home, "start", **url), "Cannot reach the PostgreSQL server at ")
        assert "did not answer in time" in started and "TimeoutError: )" not in started
        stopped = assert_one_line_error(
            impatient_cli(home, "stop", **url), "could not be asked which coursedb databases"
        )
        assert "nothing was dropped there" in stopped and "run 'python -m coursedb stop'" not in stopped
        assert "secret" not in started + stopped


# --- homes coursedb cannot write --------------------------------------------------------------


@contextlib.contextmanager
def read_only_disk() -> Iterator[Path]:
    """A tiny tmpfs mounted read-only (root only)."""
    where = Path(tempfile.mkdtemp(prefix="cdbro", dir="/tmp"))
    try:
        with tmpfs(where, "ro,size=1m,mode=0700"):
            yield where
    finally:
        where.rmdir()


@contextlib.contextmanager
def immutable_folder() -> Iterator[Path]:
    """A folder nobody, root included, may create anything in (chattr +i)."""
    where = Path(tempfile.mkdtemp(prefix="cdbimm", dir="/tmp"))
    made = (
        subprocess.run(["chattr", "+i", str(where)], capture_output=True, text=True) if shutil.which("chattr") else None
    )
    if made is None or made.returncode != 0:
        where.rmdir()
        pytest.skip("chattr +i is not available here")
    try:
        yield where
    finally:
        subprocess.run(["chattr", "-i", str(where)], check=False)
        shutil.rmtree(where, ignore_errors=True)


@pytest.mark.parametrize("where", ["read-only disk", "home on a read-only disk", "immutable folder"])
def test_a_home_coursedb_cannot_write_is_one_sentence(where):
    disk = read_only_disk() if "read-only" in where else immutable_folder()
    with disk as folder:
        home = folder if where == "read-only disk" else folder / "home"
        message = assert_one_line_error(cli(home, "start"), f"coursedb cannot write to COURSEDB_HOME={home} (")
        assert "set COURSEDB_HOME to a folder you may write to" in message
        stop = cli(home, "stop")
        if home.exists():  # it cannot even take its lock there
            assert_one_line_error(stop, f"coursedb cannot write to COURSEDB_HOME={home} (")
        else:
            assert stop.returncode == 0 and stop.stdout.strip() == "nothing to stop"
        status = cli(home, "status")  # reads only
        assert status.returncode == 0 and "No coursedb server is running" in status.stdout
        with pytest.raises(CourseDBError, match="coursedb cannot write to COURSEDB_HOME"):
            coursedb.database_url(settings_for(home))
