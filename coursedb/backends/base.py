"""What every backend is: four functions over one typed state record.

A backend is a module with ``NAME`` and these functions (a ``typing.Protocol`` checks it):

    start(settings)                  -> ServerState   start or adopt the server
    alive(state)                     -> bool          does the recorded server still run?
    stop(settings, state, keep_files) -> list[str]    end what this backend made for settings.home
    describe(state)                  -> list[(label, value)]   extra lines for ``coursedb status``
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
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
        """The record in ``text``, or None if it is torn, garbled or incomplete."""
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("admin_url"), str):
            return None
        known = {f.name for f in fields(cls)} - {"adopted"}
        try:
            state = cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError:
            return None
        needs = {"embedded": state.data, "docker": state.container, "url": state.admin_url}
        return state if isinstance(needs.get(state.backend), str) else None


class Backend(Protocol):
    NAME: str

    def start(self, settings: Settings) -> ServerState: ...

    def alive(self, state: ServerState) -> bool: ...

    def stop(self, settings: Settings, state: ServerState | None, keep_files: bool = False) -> list[str]: ...

    def describe(self, state: ServerState) -> list[tuple[str, str]]: ...
