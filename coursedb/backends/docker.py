"""PostgreSQL in a Docker container, started with Testcontainers.

Testcontainers normally starts a "Ryuk" reaper that removes containers when the Python
process that started them exits. Our server must outlive kernels and test runs, so the
reaper is off and ``coursedb stop`` removes the container instead (found by its label).
"""

from __future__ import annotations

import gc
import os
import secrets
import warnings

from ..errors import CourseDBError
from ..settings import Settings
from .base import ServerState

NAME = "docker"

LABEL = "coursedb.home"
PROBE_TIMEOUT = 2  # seconds; an endpoint that accepts and never answers must not hang us


def engine_problem() -> str | None:
    """None if a Docker engine answers, else a short reason. Never blocks for long."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not os.path.exists(host.removeprefix("unix://")):
        # The common case on machines without Docker: no socket, nothing to ask.
        return f"no Docker socket at {host.removeprefix('unix://')}"
    try:
        import docker
    except ImportError:
        return "the docker package is not installed"
    problem = None
    try:
        client = docker.from_env(timeout=PROBE_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # DockerException, requests' timeouts and connection errors
        problem = _short(exc)
    if problem is not None:
        # docker-py leaves the failed connection's socket to the garbage collector, which would
        # emit a ResourceWarning later, somewhere unrelated (an error under -W error).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    return problem


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _client():
    import docker

    return docker.from_env(timeout=PROBE_TIMEOUT * 30)


def start(settings: Settings) -> ServerState:
    problem = engine_problem()
    if problem is not None:
        raise CourseDBError(
            f"COURSEDB_BACKEND=docker, but no Docker engine is reachable ({problem}). "
            "Start Docker, or unset COURSEDB_BACKEND to use the embedded server."
        )
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.config import testcontainers_config

    testcontainers_config.ryuk_disabled = True
    container = PostgresContainer(
        settings.image, username="postgres", password=secrets.token_urlsafe(18), dbname="postgres", driver=None
    )
    container.with_command(
        "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )
    container.with_kwargs(labels={LABEL: str(settings.home), "coursedb.uid": str(os.getuid())})
    if settings.port is not None:
        container.with_bind_ports(5432, settings.port)
    try:
        container.start()
    except BaseException as exc:
        try:
            container.stop()
        except Exception:
            pass
        if isinstance(exc, Exception):
            raise CourseDBError(f"Starting the {settings.image} container failed: {_short(exc)}") from None
        raise
    return ServerState(
        backend=NAME,
        # No SSL in the image, and a primary: the user's PGSSLMODE / PGTARGETSESSIONATTRS are not for it.
        admin_url=container.get_connection_url(driver=None) + "?sslmode=disable&target_session_attrs=any",
        home=str(settings.home),
        container=container.get_wrapped_container().id,
        image=settings.image,
    )


def alive(state: ServerState) -> bool:
    try:
        client = _client()
        try:
            return client.containers.get(state.container).status == "running"
        finally:
            client.close()
    except Exception:
        return False


def stop(settings: Settings, state: ServerState | None, keep_files: bool = False) -> list[str]:
    """Remove this home's containers (found by label), whatever the state file says."""
    if engine_problem() is not None:
        return []
    client = _client()
    try:
        for c in client.containers.list(all=True, filters={"label": f"{LABEL}={settings.home}"}):
            c.remove(force=True, v=True)
    finally:
        client.close()
    return ["removed coursedb containers"]


def describe(state: ServerState) -> list[tuple[str, str]]:
    return [("container", state.container or "?"), ("image", state.image or "?")]
