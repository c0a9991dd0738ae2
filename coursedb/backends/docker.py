"""PostgreSQL in a Docker container, started with Testcontainers.

Testcontainers normally starts a "Ryuk" reaper that removes containers when the Python
process that started them exits. Our server must outlive kernels and test runs, so the
reaper is off and ``coursedb stop`` removes the container instead (found by its label).

Docker is only worth it when it works right now: ``start`` raises :class:`Unavailable` when
the engine does not answer, the image is missing and cannot be pulled within
``COURSEDB_PULL_TIMEOUT``, or the container does not come up. With ``COURSEDB_BACKEND=auto``
the caller then uses the embedded server instead (see ``backends.start``); with
``COURSEDB_BACKEND=docker`` the learner reads the sentence.
"""

from __future__ import annotations

import gc
import os
import re
import secrets
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import CourseDBError
from ..settings import Settings, describe_url, port_busy_message, port_free, user_key, write_secret
from .base import ServerState

NAME = "docker"
STATE_FIELDS = ("container",)
RUNS_SERVER = True  # ours: found by its label, removed by stop

LABEL = "coursedb.home"
PROBE_TIMEOUT = 2  # seconds; an endpoint that accepts and never answers must not hang us
PROGRESS_EVERY = 3  # seconds between two pull progress lines
CLIENT_OPTIONS = "sslmode=disable&target_session_attrs=any"
FORCE_HINT = "COURSEDB_BACKEND=docker insists on Docker, COURSEDB_BACKEND=embedded skips it"


class Unavailable(CourseDBError):
    """Docker cannot serve the course right now; ``auto`` falls back to the embedded server.

    ``str()`` is the whole story for someone who asked for Docker; ``reason`` is the short cause
    for the one line ``auto`` prints before it uses the embedded server.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


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
        problem = reason_of(exc)
    if problem is not None:
        # docker-py leaves the failed connection's socket to the garbage collector, which would
        # emit a ResourceWarning later, somewhere unrelated (an error under -W error).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    return problem


def reason_of(exc: BaseException, limit: int = 160) -> str:
    """The cause of a Docker error in words: the engine's explanation, never an HTTP status line or URL.

    docker-py's ``str()`` reads ``500 Server Error for http+docker://localhost/v1.41/...: Internal
    Server Error ("...")``; the engine's own sentence is the part in ``explanation``. A long one is
    shortened at a word boundary, never mid-word.
    """
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    text = re.sub(r"\d{3} (Client|Server) Error[^(]*\(\"?", "", str(text)).strip().rstrip('")').strip()
    text = " ".join(text.split()) or type(exc).__name__
    if len(text) > limit:
        text = text[: text.rfind(" ", 0, limit - 1)].rstrip(",;:") + " …"
    return text


def _client(timeout: float = PROBE_TIMEOUT * 30) -> Any:
    import docker

    return docker.from_env(timeout=timeout)


def _say(message: str) -> None:
    print(f"coursedb: {message}", file=sys.stderr, flush=True)


def _local_engine() -> bool:
    """Does the engine publish ports on this machine's loopback (a socket, Docker Desktop, localhost)?"""
    host = os.environ.get("DOCKER_HOST", "")
    return not host.startswith(("tcp://", "ssh://", "http://", "https://")) or bool(
        re.match(r"^\w+://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?/?$", host)
    )


def start(settings: Settings) -> ServerState:
    problem = engine_problem()
    if problem is not None:
        raise Unavailable(
            f"COURSEDB_BACKEND=docker, but no Docker engine is reachable ({problem}). "
            "Start Docker, or unset COURSEDB_BACKEND to use the embedded server.",
            f"no Docker engine answers ({problem})",
        )
    if settings.port is not None and not port_free(settings.port):
        raise CourseDBError(port_busy_message(settings.port))  # the embedded server could not use it either
    client = _client()
    try:
        _remove_leftovers(client, settings.home)
        _ensure_image(client, settings.image, settings.pull_timeout, settings.backend == "auto")
    finally:
        client.close()
    return _run_container(settings)


def _remove_leftovers(client: Any, home: Path) -> None:
    """A container of this home that is not running (the engine restarted, the machine slept) and its volume."""
    for c in client.containers.list(all=True, filters={"label": f"{LABEL}={home}"}):
        if c.status != "running":
            c.remove(force=True, v=True)


def _ensure_image(client: Any, image: str, bound: float, auto: bool) -> None:
    """Return once ``image`` is on this machine; pull it with progress lines, for at most ``bound`` seconds."""
    import docker
    from docker.utils import parse_repository_tag

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass  # pulled below, within the bound
    except docker.errors.DockerException as exc:
        raise Unavailable(_engine_failed(exc), f"the Docker engine failed ({reason_of(exc)})") from None
    then = "then the embedded server" if auto else "then it gives up"
    _say(f"pulling the Docker image {image} (first time only; up to {bound:.0f} s, {then})")
    repo, tag = parse_repository_tag(image)
    layers: dict[str, tuple[str, int, int]] = {}  # layer id -> (status, bytes done, bytes total)
    outcome: dict[str, BaseException | None] = {}
    puller = _client(timeout=max(bound, 10))

    def pull() -> None:
        try:
            for event in puller.api.pull(repo, tag or "latest", stream=True, decode=True):
                if "error" in event:
                    raise docker.errors.APIError(event["error"], explanation=event["error"])
                if "id" in event and "status" in event:
                    detail = event.get("progressDetail") or {}
                    _, done, total = layers.get(event["id"], ("", 0, 0))
                    layers[event["id"]] = (
                        event["status"],
                        detail.get("current", done),
                        detail.get("total", total),
                    )
            outcome["error"] = None
        except BaseException as exc:  # reported by the waiting thread
            outcome["error"] = exc

    thread = threading.Thread(target=pull, name="coursedb-docker-pull", daemon=True)
    started = time.monotonic()
    thread.start()
    shown = ""
    try:
        while thread.is_alive() and time.monotonic() - started < bound:
            thread.join(min(PROGRESS_EVERY, max(0.0, bound - (time.monotonic() - started))))
            line = _progress(image, layers, time.monotonic() - started)
            if thread.is_alive() and line != shown:
                _say(line)
                shown = line
        timed_out = thread.is_alive()
    finally:
        puller.close()  # a stream still running ends with the process, or when the engine gives up
        thread.join(1)
    error = outcome.get("error")
    if timed_out:
        raise Unavailable(
            f"Pulling the Docker image {image} did not finish within {bound:.0f} s (COURSEDB_PULL_TIMEOUT). "
            f"Run 'docker pull {image}' once and wait for it, or use the embedded server (COURSEDB_BACKEND=embedded).",
            f"Docker runs, but pulling the image {image} did not finish within {bound:.0f} s",
        )
    if error is not None:
        if not isinstance(error, Exception):
            raise error  # Ctrl-C
        cause = pull_cause(reason_of(error))
        raise Unavailable(
            f"The Docker image {image} is not on this machine and could not be pulled: {cause}. "
            f"Check the network and COURSEDB_IMAGE, or use the embedded server (COURSEDB_BACKEND=embedded).",
            f"Docker runs, but the image {image} is not on this machine and could not be pulled: {cause}",
        )
    _say(f"pulled {image} in {time.monotonic() - started:.0f} s")


def pull_cause(reason: str) -> str:
    """What a failed pull means, in words a learner can act on; the engine's text where we know no better."""
    low = reason.lower()
    host = re.search(r"lookup ([\w.-]+)|https?://([\w.:-]+)", reason)
    name = f" {next(g for g in host.groups() if g)}" if host else ""
    if any(k in low for k in ("no such host", "dial tcp", "i/o timeout", "tls handshake", "network is unreachable")):
        return f"the registry{name} cannot be reached from this machine (offline, or a proxy or firewall in the way)"
    if "toomanyrequests" in low or "rate limit" in low:
        return "the registry's pull rate limit was reached; wait a while, or run 'docker login'"
    if any(k in low for k in ("manifest unknown", "not found", "pull access denied", "does not exist")):
        return "the registry has no such image; check the name and tag"
    return reason


def _progress(image: str, layers: dict[str, tuple[str, int, int]], elapsed: float) -> str:
    done = sum(1 for status, _, _ in layers.values() if status in ("Pull complete", "Already exists"))
    got = sum(d for _, d, _ in layers.values())
    total = sum(t for _, _, t in layers.values())
    size = f", {got / 1e6:.0f} of {total / 1e6:.0f} MB" if total else ""
    return f"pulling {image}: {done} of {len(layers) or '?'} layers done{size} ({elapsed:.0f} s)"


def _engine_failed(exc: BaseException) -> str:
    return (
        f"The Docker engine failed: {reason_of(exc)}. "
        "Restart Docker, or use the embedded server (COURSEDB_BACKEND=embedded)."
    )


def _run_container(settings: Settings) -> ServerState:
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.config import testcontainers_config

    testcontainers_config.ryuk_disabled = True
    password = secrets.token_urlsafe(18)
    container = PostgresContainer(
        settings.image, username="postgres", password=password, dbname="postgres", driver=None
    )
    container.with_command(
        "postgres -c fsync=off -c synchronous_commit=on -c full_page_writes=off -c max_connections=300"
    )
    container.with_kwargs(labels={LABEL: str(settings.home), "coursedb.user": user_key()})
    local = _local_engine()
    if local:
        # Like the embedded server: reachable from this machine only, on COURSEDB_PORT or a free port.
        container.ports["5432"] = ("127.0.0.1", settings.port) if settings.port else ("127.0.0.1",)  # type: ignore[assignment]
    elif settings.port is not None:
        container.with_bind_ports(5432, settings.port)  # a remote engine: only its own interfaces reach it
    try:
        container.start()
        host = "127.0.0.1" if local else container.get_container_host_ip()
        port = container.get_exposed_port(5432)
        # No SSL in the image, and a primary: the user's PGSSLMODE / PGTARGETSESSIONATTRS are not for it.
        url = f"postgresql://postgres:{quote(password, safe='')}@{host}:{port}/postgres?{CLIENT_OPTIONS}"
        state = ServerState(
            backend=NAME,
            admin_url=url,
            home=str(settings.home),
            container=container.get_wrapped_container().id,
            image=settings.image,
            tcp_url=url,
        )
        write_secret(settings.home / "password", password)
        return state
    except BaseException as exc:
        try:
            container.stop()
        except Exception:
            pass  # the start failed already: that failure is the one to report, not this cleanup's
        if not isinstance(exc, Exception):
            raise
        reason = reason_of(exc)
        if settings.port is not None and ("port is already allocated" in reason or "address already in use" in reason):
            raise CourseDBError(port_busy_message(settings.port)) from None
        raise Unavailable(
            f"Docker could not start the {settings.image} container: {reason}. "
            "Check 'docker ps -a' and Docker's own status, or use the embedded server (COURSEDB_BACKEND=embedded).",
            f"the {settings.image} container did not start ({reason})",
        ) from None


def alive(state: ServerState) -> bool:
    try:
        client = _client()
        try:
            return client.containers.get(state.container).status == "running"
        finally:
            client.close()
    except Exception:
        return False  # container gone, engine away or not answering: no server we can use (stop finds it by label)


def stop(settings: Settings, state: ServerState | None, keep_files: bool = False) -> list[str]:
    """Remove this home's containers and their volumes (found by label), whatever the state file says."""
    if engine_problem() is not None:
        return []
    client = _client()
    try:
        found = client.containers.list(all=True, filters={"label": f"{LABEL}={settings.home}"})
        for c in found:
            c.remove(force=True, v=True)
    finally:
        client.close()
    if not keep_files:
        (settings.home / "password").unlink(missing_ok=True)
    return [f"removed {len(found)} coursedb container(s)"] if found else []


def describe(state: ServerState) -> list[tuple[str, str]]:
    return [
        ("server", f"container {(state.container or '?')[:12]} from {state.image or '?'}"),
        ("tcp url", f"{describe_url(state.tcp_url or state.admin_url)}  (password in {state.home}/password)"),
        ("log", f"docker logs {(state.container or '?')[:12]}"),
    ]
