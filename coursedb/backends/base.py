"""What every backend is: a few functions over one typed state record.

A backend is a module with ``NAME``, ``STATE_FIELDS``, ``RUNS_SERVER`` and these functions (a
``typing.Protocol`` says it; ``check_backend`` enforces it when the registry is built):

    start(settings)                   -> ServerState   start or adopt the server
    alive(state)                      -> bool          does the recorded server still run?
    stop(settings, state, keep_files) -> list[str]     end what this backend made for settings.home
    describe(state)                   -> list[(label, value)]   extra lines for ``coursedb status``

and, where the backend has such a quirk, any of these optional hooks:

    preflight(settings)               checks before anything is created (raise CourseDBError)
    serves(settings, state) -> bool   the recorded server is the one settings ask for (default: yes)
    mismatch(settings, state) -> str | None   a setting the running server does not follow
    unrecorded(settings) -> ServerState | None   a server settings name without a state file

``STATE_FIELDS`` names the fields of ``ServerState`` a record of this backend cannot do without;
``RUNS_SERVER`` says whether coursedb starts and stops the server itself (its identity is then
the home's, whatever port it listens on) or it is someone else's, where its URL says. Code
outside the backend asks these, never the backend's name. This module knows no backend: the
registry (the package) reads a record against its backend (``coursedb.backends.read``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from types import ModuleType
from typing import Protocol

from ..settings import Settings


@dataclass(frozen=True)
class ServerState:
    """The running shared server, as recorded in ``<home>/state.json``."""

    backend: str
    admin_url: str
    home: str = ""
    # embedded
    pid: int | None = None
    port: int | None = None  # the TCP port it listens on (None: Unix socket only)
    data: str | None = None
    log: str | None = None
    tcp_url: str | None = None
    # docker
    container: str | None = None
    image: str | None = None
    # Not recorded: True when start() found this server already running (never discard it then).
    adopted: bool = field(default=False, compare=False)

    def to_json(self) -> str:
        record = {k: v for k, v in asdict(self).items() if v is not None and k != "adopted"}
        return json.dumps(record, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ServerState | None:
        """The record in ``text``, or None if it is torn, garbled or no record at all (whether its
        backend is known and it has what that backend needs: ``coursedb.backends.read``)."""
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("backend", "admin_url")):
            return None
        known = {f.name for f in fields(cls)} - {"adopted"}
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError:
            return None

    def incomplete(self, state_fields: tuple[str, ...]) -> list[str]:
        """The fields of ``state_fields`` this record lacks (a record torn by an older writer)."""
        return [f for f in state_fields if not isinstance(getattr(self, f), str)]


class Backend(Protocol):
    NAME: str
    STATE_FIELDS: tuple[str, ...]
    RUNS_SERVER: bool

    def start(self, settings: Settings) -> ServerState: ...

    def alive(self, state: ServerState) -> bool: ...

    def stop(self, settings: Settings, state: ServerState | None, keep_files: bool = False) -> list[str]: ...

    def describe(self, state: ServerState) -> list[tuple[str, str]]: ...


REQUIRED = ("start", "alive", "stop", "describe")
OPTIONAL = ("preflight", "serves", "mismatch", "unrecorded")


def check_backend(name: str, module: ModuleType | Backend) -> None:
    """Refuse a backend module that does not fit the interface (a programming error, found at import)."""
    problems = []
    if getattr(module, "NAME", None) != name:
        problems.append(f"NAME is {getattr(module, 'NAME', None)!r}, not {name!r}")
    problems += [f"{f}() is missing" for f in REQUIRED if not callable(getattr(module, f, None))]
    problems += [f"{f} is not callable" for f in OPTIONAL if hasattr(module, f) and not callable(getattr(module, f))]
    if not isinstance(getattr(module, "RUNS_SERVER", None), bool):
        problems.append("RUNS_SERVER (True: coursedb starts and stops the server itself) is missing")
    state_fields = getattr(module, "STATE_FIELDS", None)
    if not isinstance(state_fields, tuple):
        problems.append("STATE_FIELDS (the ServerState fields its records need) is missing")
    else:
        known = {f.name for f in fields(ServerState)}
        problems += [f"STATE_FIELDS names {f!r}, which ServerState lacks" for f in state_fields if f not in known]
    if problems:
        raise TypeError(f"coursedb.backends.{name} is not a backend: {'; '.join(problems)}")
