"""The docker backend against a real engine (GitHub Actions has one; this course's dev box does not).

Skipped, with the reason, wherever no Docker engine answers. A private COURSEDB_HOME labels
the container, so these tests never meet the shared server or anyone else's container.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from coursedb.backends import docker
from tests.helpers import cleanup, cli, dbname, end_owner, make_home, start_owner

PROBLEM = docker.engine_problem()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(PROBLEM is not None, reason=f"no Docker engine is reachable ({PROBLEM})"),
    pytest.mark.timeout(300),  # the first pull of postgres:16-alpine
]


def containers(home) -> list:
    import docker as docker_py

    client = docker_py.from_env()
    try:
        return client.containers.list(all=True, filters={"label": f"{docker.LABEL}={home}"})
    finally:
        client.close()


@pytest.fixture(scope="module")
def docker_home():
    home = make_home()
    try:
        result = cli(home, "start", COURSEDB_BACKEND="docker", timeout=300)
        assert result.returncode == 0, result.stderr
        yield home
    finally:
        cleanup(home)
        assert containers(home) == []


def test_one_labelled_container_serves_the_home(docker_home):
    state = json.loads((docker_home / "state.json").read_text())
    assert state["backend"] == "docker"
    assert [c.id for c in containers(docker_home)] == [state["container"]]
    assert cli(docker_home, "start", COURSEDB_BACKEND="docker").returncode == 0  # reused, not a second one
    assert len(containers(docker_home)) == 1


def test_each_process_gets_its_own_database_on_the_container(docker_home):
    first, first_url = start_owner(docker_home, COURSEDB_BACKEND="docker")
    second, second_url = start_owner(docker_home, COURSEDB_BACKEND="docker")
    try:
        assert dbname(first_url) != dbname(second_url)

        async def count() -> int:
            conn = await asyncpg.connect(first_url)
            try:
                return await conn.fetchval("SELECT count(*) FROM users")
            finally:
                await conn.close()

        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(asyncio.run, count()).result() == 0
    finally:
        end_owner(first)
        end_owner(second)


def test_stop_removes_the_container():
    home = make_home()
    try:
        assert cli(home, "start", COURSEDB_BACKEND="docker", timeout=300).returncode == 0
        assert len(containers(home)) == 1
        result = cli(home, "stop", COURSEDB_BACKEND="docker")
        assert result.returncode == 0, result.stderr
        assert containers(home) == []
        assert not home.exists()
    finally:
        cleanup(home)
