"""The docker backend against a real engine: GitHub Actions' runners, and .ci/run's pass on the shared
docker-engine tool (an engine on a private socket, images built offline, no registry reachable).

Skipped, with the reason, wherever no Docker engine answers. A private COURSEDB_HOME labels
the container, so these tests never meet the shared server or anyone else's container.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from coursedb.backends import docker
from tests.helpers import (
    assert_one_line_error,
    cleanup,
    cli,
    dbname,
    end_owner,
    fetch,
    free_port,
    make_home,
    run,
    silent_listener,
    start_owner,
)

PROBLEM = docker.engine_problem()
if PROBLEM is not None and os.environ.get("COURSE_DOCKER_TESTS") == "required":
    # .ci/run's docker pass: an engine was started for it, so a skip here would hide a broken CI.
    pytest.fail(f"the Docker tests must run here, but no Docker engine answers ({PROBLEM})", pytrace=False)
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


# --- parity with the embedded backend -----------------------------------------------------


def test_coursedb_port_is_published_on_loopback_only_with_a_password_file(home):
    port = free_port()
    result = cli(home, "start", COURSEDB_BACKEND="docker", COURSEDB_PORT=str(port), timeout=300)
    assert result.returncode == 0, result.stderr
    [container] = containers(home)
    bindings = container.attrs["HostConfig"]["PortBindings"]["5432/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    password = (home / "password").read_text().strip()
    assert oct((home / "password").stat().st_mode & 0o777) == "0o600"
    rows = run(fetch(f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres", "SELECT 1 AS one"))
    assert rows[0]["one"] == 1


def test_a_busy_coursedb_port_gives_the_embedded_backends_sentence(home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        on_docker = cli(home, "start", COURSEDB_BACKEND="docker", COURSEDB_PORT=port)
        on_embedded = cli(home, "start", COURSEDB_BACKEND="embedded", COURSEDB_PORT=port)
    message = assert_one_line_error(on_docker, f"Port {port} (COURSEDB_PORT) is already in use", "unset COURSEDB_PORT")
    assert on_embedded.stderr.strip() == message
    assert containers(home) == []


def test_a_container_the_engine_stopped_is_replaced_not_left_behind(home):
    assert cli(home, "start", COURSEDB_BACKEND="docker", timeout=300).returncode == 0
    [old] = containers(home)
    old_volumes = {m["Name"] for m in old.attrs["Mounts"] if m["Type"] == "volume"}
    old.stop(timeout=1)  # what an engine restart (or a sleeping laptop) does to it
    result = cli(home, "start", COURSEDB_BACKEND="docker", timeout=300)
    assert result.returncode == 0, result.stderr
    [new] = containers(home)
    assert new.id != old.id and new.status == "running"
    import docker as docker_py

    client = docker_py.from_env()
    try:
        left = {v.name for v in client.volumes.list()} & old_volumes
    finally:
        client.close()
    assert left == set(), "the stopped container's volume was left behind"


def status_labels(out: str) -> list[str]:
    return [line.split(":", 1)[0] for line in out.splitlines() if not line.startswith(" ")]


def test_status_shows_the_same_fields_as_the_embedded_backend(docker_home, home):
    on_docker = cli(docker_home, "status", COURSEDB_BACKEND="docker")
    assert cli(home, "start").returncode == 0
    on_embedded = cli(home, "status")
    assert status_labels(on_docker.stdout) == status_labels(on_embedded.stdout), (on_docker.stdout, on_embedded.stdout)
    assert f"(password in {docker_home}/password)" in on_docker.stdout


# --- auto never strands a learner ---------------------------------------------------------

UNPULLABLE = "postgres:99-no-such-tag"


def test_auto_ends_on_the_embedded_server_when_the_image_cannot_be_pulled(home):
    result = cli(home, "start", COURSEDB_BACKEND=None, COURSEDB_IMAGE=UNPULLABLE, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads((home / "state.json").read_text())["backend"] == "embedded"
    [why] = [line for line in result.stderr.splitlines() if "using the embedded server" in line]
    assert why.startswith("coursedb: using the embedded server: Docker runs, but the image " + UNPULLABLE)
    assert "COURSEDB_BACKEND=docker" in why and "COURSEDB_BACKEND=embedded" in why
    assert "Server Error" not in result.stderr and "http+docker" not in result.stderr
    assert containers(home) == []


def test_docker_asked_for_with_an_unpullable_image_exits_2_with_whole_sentences(home):
    result = cli(home, "start", COURSEDB_BACKEND="docker", COURSEDB_IMAGE=UNPULLABLE, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"coursedb: The Docker image {UNPULLABLE} is not on this machine and could not be pulled")
    assert message.endswith("(COURSEDB_BACKEND=embedded).")
    assert "Server Error" not in message and "http+docker" not in message
    assert not (home / "state.json").exists()
    assert containers(home) == []


@pytest.fixture
def silent_registry():
    """A registry that accepts connections and never answers: a pull that makes no progress."""
    with silent_listener() as address:
        yield f"{address}"


def test_a_pull_that_does_not_finish_in_time_shows_progress_then_uses_the_embedded_server(home, silent_registry):
    image = f"{silent_registry}/postgres:16-alpine"
    result = cli(home, "start", COURSEDB_BACKEND=None, COURSEDB_IMAGE=image, COURSEDB_PULL_TIMEOUT="4", timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads((home / "state.json").read_text())["backend"] == "embedded"
    lines = result.stderr.splitlines()
    first = f"coursedb: pulling the Docker image {image} (first time only; up to 4 s, then the embedded server)"
    assert lines[0] == first
    assert any(line.startswith(f"coursedb: pulling {image}: ") for line in lines), lines  # progress
    why = f"coursedb: using the embedded server: Docker runs, but pulling the image {image} did not finish within 4 s"
    assert lines[-1].startswith(why)
