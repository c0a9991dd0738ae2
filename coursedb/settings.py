"""Settings read from the environment, checked once, with friendly errors."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import CourseDBError

BACKENDS = ("auto", "docker", "embedded", "url")
DEFAULT_IMAGE = "postgres:16-alpine"
# Every database coursedb creates starts with this, so it never touches anything else.
DB_PREFIX = "coursedb_"


@dataclass(frozen=True)
class Settings:
    backend: str
    url: str | None
    home: Path
    image: str
    port: int | None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        backend = env.get("COURSEDB_BACKEND", "auto").strip().lower() or "auto"
        if backend not in BACKENDS:
            raise CourseDBError(
                f"COURSEDB_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}; unset it to let coursedb choose."
            )
        url = env.get("COURSEDB_URL", "").strip() or None
        if url is not None:
            check_url_syntax(url)
        if backend == "url" and url is None:
            raise CourseDBError(
                "COURSEDB_BACKEND=url needs COURSEDB_URL, e.g. postgresql://user:password@localhost:5432/postgres."
            )
        port = env.get("COURSEDB_PORT", "").strip() or None
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise CourseDBError(f"COURSEDB_PORT={port!r} is not a TCP port number (1-65535).")
        return cls(
            backend=backend,
            url=url,
            home=resolve_home(env.get("COURSEDB_HOME", "").strip()),
            image=env.get("COURSEDB_IMAGE", DEFAULT_IMAGE),
            port=int(port) if port else None,
        )


def resolve_home(value: str) -> Path:
    """COURSEDB_HOME as one absolute path, the same for kernels (cwd notebooks/) and the CLI.

    ``~`` is expanded; a relative path is taken from the course folder, not from whichever
    directory a process happens to run in (else each would start a server of its own).
    """
    if not value:
        return default_home()
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = COURSE_ROOT / path
    return Path(os.path.abspath(path))


# The folder that holds the coursedb package: the course checkout.
COURSE_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    """One directory per machine and user: the shared server's state lives here."""
    return Path(tempfile.gettempdir()) / f"coursedb-{os.getuid()}"


def describe_url(url: str) -> str:
    """A DSN with the password hidden, safe to print."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


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
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise CourseDBError(
            f"{path} exists but is not a directory owned by you; remove it or set COURSEDB_HOME elsewhere."
        )
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise CourseDBError(f"{path} is writable by other users; run 'chmod go-w {path}' or remove it.")
    return path
