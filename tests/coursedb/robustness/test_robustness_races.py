"""Many users starting one server at the same instant, pytest-xdist, and a final stop.

All on one private home, in order: kernels racing 20 rounds, two pytest runs racing, an
xdist run with three workers, then ``python -m coursedb stop`` must leave nothing behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from coursedb import databases, server
from coursedb.backends import embedded
from tests.helpers import (
    PYTHON,
    cleanup,
    cli,
    database_names,
    dbname,
    env_for,
    leftovers,
    make_home,
    owned,
    postmasters,
    run,
    settings_for,
    start_racer,
)

ROUNDS = 20
RACERS = 3
# The child pytest runs load only the plugins they use: autoloading every installed plugin
# (nbval, Jupyter, benchmark...) costs several seconds per process, per xdist worker too.
PLUGINS = ["-p", "xdist.plugin", "-p", "pytest_timeout"]


@pytest.fixture(scope="module")
def home():  # one home for the whole module: its tests run in order on it
    path = make_home()
    yield path
    cleanup(path)


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="cdbw", dir="/tmp"))
    (path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\ntimeout = 60\n")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def admin_url(home: Path) -> str:
    return json.loads((home / "state.json").read_text())["admin_url"]


@pytest.mark.timeout(120)
def test_kernels_starting_at_the_same_instant_share_exactly_one_server(home):
    """Each round takes the server away first: every 10th round all of it (a cold start with
    initdb), otherwise only its processes (the state file then names a dead server). Then all
    racers ask for their database at the same instant (their requests are written back to back
    while each waits on its stdin). After a cold start each racer's database is gone with the old
    server, and each says so once, then takes a new one."""
    settings = settings_for(home)
    racers = [start_racer() for _ in range(RACERS)]

    def ask() -> list[dict]:
        for racer in racers:
            racer.stdin.write(f"{home}\n")
        for racer in racers:
            racer.stdin.flush()
        return [json.loads(racer.stdout.readline()) for racer in racers]

    try:
        for round_ in range(ROUNDS):
            if round_ % 10 == 0:
                server.stop(settings, force=True)  # the racers' databases go with it
            else:
                embedded.kill(settings)
            assert not postmasters(home)
            answers = ask()
            if round_ and round_ % 10 == 0:
                for answer in answers:
                    assert answer.get("error", "").startswith("CourseDBError: Your database coursedb_"), answer
                    assert "it came back to a new one (made afresh" in answer["error"], answer
                answers = ask()
            assert all("url" in a for a in answers), (round_, answers)
            found = postmasters(home)
            assert len(found) == 1, (round_, found)
            assert json.loads((home / "state.json").read_text())["pid"] == found[0].pid
            names = {dbname(a["url"]) for a in answers}
            assert len(names) == RACERS, (round_, answers)
            assert names <= run(database_names(admin_url(home)))
    finally:
        for racer in racers:
            racer.stdin.close()
            racer.wait(timeout=30)
            racer.stdout.close()
    # The racers exited normally: their databases went with them.
    left = run(owned(admin_url(home)))
    assert [d.name for d in left] == [databases.template_name()]


TINY_TEST = """
    import asyncio, os

    import asyncpg
    import coursedb


    def test_my_own_database():
        url = coursedb.database_url()

        async def insert_and_count():
            conn = await asyncpg.connect(url)
            try:
                # The same row in every run: a shared database would break the UNIQUE email.
                await conn.execute("INSERT INTO users (email, name) VALUES ('same@example.com', 'Same')")
                return await conn.fetchval("SELECT count(*) FROM users")
            finally:
                await conn.close()

        assert asyncio.run(insert_and_count()) == 1
        print("DATABASE", url.split("/")[3].split("?")[0], coursedb.databases.owner_kind())
"""


@pytest.mark.timeout(120)
def test_two_pytest_runs_started_together_share_one_server(home, workdir):
    cli(home, "stop")  # both runs find no server
    (workdir / "test_tiny.py").write_text(textwrap.dedent(TINY_TEST))
    runs = [
        subprocess.Popen(
            [PYTHON, "-m", "pytest", *PLUGINS, "-q", "-s", "test_tiny.py"],
            env=env_for(home, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"), cwd=workdir,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for _ in range(2)
    ]  # fmt: skip
    outs = [r.communicate(timeout=100)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outs
    seen = [line.split()[1:] for out in outs for line in out.splitlines() if line.startswith("DATABASE")]
    assert len(seen) == 2 and seen[0][0] != seen[1][0], outs
    assert {kind for _, kind in seen} == {"pytest"}
    assert len(postmasters(home)) == 1
    left = run(owned(admin_url(home)))
    assert [d.name for d in left] == [databases.template_name()]  # both dropped at exit


XDIST_TEST = """
    import os, pathlib

    import pytest
    import coursedb

    OUT = pathlib.Path(__file__).parent / "out"


    @pytest.mark.parametrize("n", range(6))
    def test_each_worker_has_a_database(n):
        url = coursedb.database_url()
        name = url.split("/")[3].split("?")[0]
        (OUT / str(n)).write_text(f"{os.environ['PYTEST_XDIST_WORKER']} {name} {coursedb.databases.owner_kind()}")
"""


@pytest.mark.timeout(120)
def test_xdist_workers_get_a_database_each_all_dropped_afterwards(home, workdir):
    (workdir / "out").mkdir()
    (workdir / "test_xdist.py").write_text(textwrap.dedent(XDIST_TEST))
    result = subprocess.run(
        [PYTHON, "-m", "pytest", *PLUGINS, "-q", "-n", "3", "test_xdist.py"],
        env=env_for(home, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"), cwd=workdir, capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [p.read_text().split() for p in sorted((workdir / "out").iterdir())]
    assert len(rows) == 6
    by_worker = {}
    for worker, name, *kind in rows:
        by_worker.setdefault(worker, set()).add(name)
        assert kind == ["xdist", worker]
    assert len(by_worker) == 3, by_worker
    assert all(len(names) == 1 for names in by_worker.values()), by_worker  # one database per worker
    all_names = set().union(*by_worker.values())
    assert len(all_names) == len(by_worker)  # and no two workers share one
    assert not all_names & run(database_names(admin_url(home)))  # all dropped when the workers ended
    assert len(postmasters(home)) == 1


@pytest.mark.timeout(60)
def test_stop_after_all_of_that_leaves_nothing(home):
    assert cli(home, "start").returncode == 0
    result = cli(home, "stop")
    assert result.returncode == 0, result.stderr
    assert leftovers(home) == []
    assert not home.exists()
