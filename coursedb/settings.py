"""Settings read from the environment, checked once, with friendly errors."""

from __future__ import annotations

import getpass
import os
import re
import socket
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import CourseDBError
from .paths import course_root
from .platform import unix_sockets

BACKENDS = ("auto", "docker", "embedded", "url")
# How clients reach the embedded server: a private Unix socket, or 127.0.0.1 with a password
# (Windows has no Unix sockets for PostgreSQL; COURSEDB_TRANSPORT=tcp runs that path anywhere).
TRANSPORTS = ("auto", "unix", "tcp")
DEFAULT_PULL_TIMEOUT = 60.0  # seconds a first Docker image pull may take before auto uses the embedded server
DEFAULT_IMAGE = "postgres:16-alpine"
# How long an owner database's lock must have been free, as the server's sweeps saw it, before a
# sweep drops it: far longer than a keeper needs to come back (keeper.RECONNECT_BOUND), and the
# longest suspension across a server restart after which a laptop still finds its database.
DEFAULT_SWEEP_GRACE = 600.0


@dataclass(frozen=True)
class Settings:
    backend: str
    url: str | None
    home: Path
    image: str
    port: int | None
    transport: str = "unix"  # resolved: "unix" or "tcp"
    pull_timeout: float = DEFAULT_PULL_TIMEOUT
    sweep_grace: float = DEFAULT_SWEEP_GRACE  # COURSEDB_SWEEP_GRACE: for tests, which cannot wait that long

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every COURSEDB_* setting, each read and checked by a reader of its own (below)."""
        env = dict(os.environ if env is None else env)
        backend = read_backend(env)
        return cls(
            backend=backend,
            url=read_url(env, backend),
            home=resolve_home(env.get("COURSEDB_HOME", "").strip()),
            image=env.get("COURSEDB_IMAGE", DEFAULT_IMAGE),
            port=read_port(env),
            transport=read_transport(env),
            pull_timeout=read_pull_timeout(env),
            sweep_grace=read_sweep_grace(env),
        )


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "auto").strip().lower() or "auto"
    if value not in choices:
        raise CourseDBError(f"{name}={value!r} is not one of {', '.join(choices)}; unset it to let coursedb choose.")
    return value


def read_backend(env: Mapping[str, str]) -> str:
    return _choice(env, "COURSEDB_BACKEND", BACKENDS)


def read_url(env: Mapping[str, str], backend: str) -> str | None:
    url = env.get("COURSEDB_URL", "").strip() or None
    if url is not None:
        check_url_syntax(url)
    elif backend == "url":
        raise CourseDBError(
            "COURSEDB_BACKEND=url needs COURSEDB_URL, e.g. postgresql://user:password@localhost:5432/postgres."
        )
    return url


def read_port(env: Mapping[str, str]) -> int | None:
    """ASCII digits only: int() would also read other scripts' digits ('٣٤٥٦' as 3456)."""
    port = env.get("COURSEDB_PORT", "").strip() or None
    if port is None:
        return None
    if not (re.fullmatch(r"[0-9]{1,5}", port) and 0 < int(port) < 65536):
        raise CourseDBError(f"COURSEDB_PORT={port!r} is not a TCP port number (1-65535).")
    return int(port)


def read_transport(env: Mapping[str, str]) -> str:
    """Resolved: "unix" or "tcp"."""
    transport = _choice(env, "COURSEDB_TRANSPORT", TRANSPORTS)
    if transport == "auto":
        return "unix" if unix_sockets() else "tcp"
    if transport == "unix" and not unix_sockets():
        raise CourseDBError("COURSEDB_TRANSPORT=unix is not possible on Windows; unset it to use TCP on 127.0.0.1.")
    return transport


def read_pull_timeout(env: Mapping[str, str]) -> float:
    seconds = _seconds(env, "COURSEDB_PULL_TIMEOUT", DEFAULT_PULL_TIMEOUT, zero=False)
    if seconds is None:
        shown = env["COURSEDB_PULL_TIMEOUT"].strip()
        raise CourseDBError(f"COURSEDB_PULL_TIMEOUT={shown!r} is not a number of seconds (e.g. 60).")
    return seconds


def read_sweep_grace(env: Mapping[str, str]) -> float:
    """Seconds; 0 lets a sweep drop a database at the first sight of its free lock (tests only)."""
    seconds = _seconds(env, "COURSEDB_SWEEP_GRACE", DEFAULT_SWEEP_GRACE, zero=True)
    if seconds is None:
        shown = env["COURSEDB_SWEEP_GRACE"].strip()
        raise CourseDBError(
            f"COURSEDB_SWEEP_GRACE={shown!r} is not a number of seconds (0-86400); it exists for coursedb's own tests, "
            "so unset it."
        )
    return seconds


def _seconds(env: Mapping[str, str], name: str, default: float, *, zero: bool) -> float | None:
    """``name`` as seconds up to a day (``default`` if unset or blank); None if it is no such number."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        seconds = float(text) if text.isascii() else -1.0
    except ValueError:
        return None
    above_floor = seconds >= 0 if zero else seconds > 0
    return seconds if above_floor and seconds <= 86400 else None  # NaN fails both


def resolve_home(value: str) -> Path:
    """COURSEDB_HOME as one absolute path, the same for kernels (cwd notebooks/) and the CLI.

    ``~`` is expanded; a relative path is taken from the course folder, not from whichever
    directory a process happens to run in (else each would start a server of its own).
    """
    if not value:
        return default_home()
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = course_root() / path
    return Path(os.path.abspath(path))


def user_key() -> str:
    """Who this user is on this machine: the uid where there is one, else the login name (Windows)."""
    return str(os.getuid()) if hasattr(os, "getuid") else getpass.getuser()


def default_home() -> Path:
    """One directory per machine and user: the shared server's state lives here."""
    return Path(tempfile.gettempdir()) / f"coursedb-{user_key()}"


def port_free(port: int) -> bool:
    """Can a server listen on 127.0.0.1:``port``?"""
    with socket.socket() as s:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let us bind a port someone else holds
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port nobody listens on right now, for a server that must not wait for COURSEDB_PORT."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_busy_message(port: int) -> str:
    """The same sentence on every backend."""
    return f"Port {port} (COURSEDB_PORT) is already in use; pick another port or unset COURSEDB_PORT."


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to a file only this user may read (a password, for COURSEDB_PORT clients)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def describe_url(url: str) -> str:
    """A DSN with every password hidden (``user:password@`` and ``?password=``), safe to print."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hosts}"
    if query:
        query = "&".join(_hide_password(item) for item in query.split("&"))
    return parts._replace(netloc=netloc, query=query).geturl()


def _hide_password(item: str) -> str:
    key, equals, _ = item.partition("=")
    return f"{key}=***" if equals and unquote(key).strip().lower() == "password" else item


def check_url_syntax(url: str) -> None:
    """Reject DSNs asyncpg cannot use, before anything tries to connect (no network)."""
    unencoded = _unencoded_in_userinfo(url)
    if unencoded:
        raise CourseDBError(
            f"The password (or user) in COURSEDB_URL contains {' '.join(unencoded)}, which must be percent-encoded "
            '(@ as %40, : as %3A, / as %2F, # as %23, ? as %3F); e.g. python -c "import urllib.parse; '
            "print(urllib.parse.quote('your-password', safe=''))\"."
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise CourseDBError(f"COURSEDB_URL is malformed ({exc}).") from None
    if parts.scheme not in ("postgresql", "postgres"):
        hint = ""
        if "+" in parts.scheme:
            hint = " Drop the SQLAlchemy driver part (e.g. '+psycopg2'): asyncpg wants a plain DSN."
        raise CourseDBError(f"COURSEDB_URL must start with postgresql:// (got {parts.scheme or 'no scheme'!r})." + hint)


def _unencoded_in_userinfo(url: str) -> list[str]:
    """Characters the user or password holds unencoded, if the URL reads as such a mistake.

    ``postgresql://u:p@ss@host/db`` splits at the first '@' (host 'ss@host');
    ``postgresql://u:pa/ss@host/db`` ends the host part at '/' (port 'pa'). A ':' is fine.
    """
    rest = url.partition("://")[2]
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if netloc.count("@") > 1:
        return ["'@'"]
    if "@" in netloc or "@" not in rest[len(netloc) :] or len(netloc) == len(rest):
        return []
    _, colon, port = netloc.rpartition(":")
    if colon and port and not port.isdigit():  # 'u:pa' followed by the rest of the password
        return [repr(rest[len(netloc)])]
    return []


def secure_dir(path: Path, mode: int = 0o700) -> Path:
    """Create ``path`` owned by us with ``mode``; refuse one someone else could tamper with."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if not hasattr(os, "getuid"):
        return path  # Windows: the per-user temp directory is private already; no POSIX owner or mode bits
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise CourseDBError(
            f"{path} exists but is not a directory owned by you; remove it or set COURSEDB_HOME elsewhere."
        )
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise CourseDBError(f"{path} is writable by other users; run 'chmod go-w {path}' or remove it.")
    return path
