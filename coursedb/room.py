"""A room on one server: the connection budget per learner, a full server that says so, sizing,
and a role per learner (``python -m coursedb room add``) with an instructor's role that sees them all.

A workshop room shares one PostgreSQL server (a ``COURSEDB_URL`` server, or one embedded server on a
JupyterHub machine). Every learner's kernel costs that server connections, and the server has a fixed
number of them (``max_connections``, 100 by default on PostgreSQL). So the course is built to a budget:

    BUDGET = 4 connections per learner at any moment
           = 1 session the kernel holds for as long as it lives (so the server can vouch for it)
           + 1 the notebook's own demo connection or pool, between cells
           + 2 a ``%%ipytest`` cell's ``db_pool`` (conftest.py: min_size=1, max_size=2)

(A demo cell may use up to 3 connections of its own while no test runs. The one exception is
notebook 07's ``pytest -n 2`` demo, stated in that notebook's header as ``connections: 8``.)

The course's test command runs every notebook in a real kernel (coursebook/pytest_plugin.py) and counts,
from the server's own connection log, the most sessions that were open at once; ``benchmarks/room.py`` does
the same for a room of N learners and stores the measured figures that ``python -m coursedb room N``
turns into what a room needs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from . import databases, names
from .databases import _literal as literal
from .databases import quote_ident
from .errors import CourseDBError
from .paths import benchmark_results

BUDGET = 4
# db_pool in conftest.py: two connections are what a test needs to show concurrency and isolation.
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 2
# The most a notebook may state in its header instead of BUDGET (07 does: its `pytest -n 2` demo adds two
# owners for a few seconds, each with a liveness session and a db_pool of its own).
MAX_NOTEBOOK_BUDGET = 2 + 2 * (1 + POOL_MAX_SIZE)

# Connections a room server needs beyond the learners': PostgreSQL's reserved superuser slots
# (superuser_reserved_connections, 3 by default) and a few for the instructor's own sessions.
SERVER_RESERVE = 3 + 5

# SQLSTATE 53300: max_connections reached, a role's or a database's CONNECTION LIMIT reached,
# or only the slots reserved for superusers are left. asyncpg raises TooManyConnectionsError.
TOO_MANY_CONNECTIONS = "53300"


# --- a full server says so ------------------------------------------------------------------


def full_server_error(exc: BaseException | None) -> BaseException | None:
    """The 'too many connections' error in ``exc`` or its causes, or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, asyncpg.TooManyConnectionsError) or getattr(exc, "sqlstate", None) == TOO_MANY_CONNECTIONS:
            return exc
        if isinstance(getattr(exc, "exceptions", None), (list, tuple)):  # an exception group (3.11+)
            for inner in exc.exceptions:
                found = full_server_error(inner)
                if found is not None:
                    return found
        exc = exc.__cause__ or exc.__context__
    return None


def explain(exc: BaseException) -> str:
    """What a notebook cell shows for a coursedb error or a refused connection: one sentence."""
    return full_server_message(exc) if full_server_error(exc) is not None else str(exc)


def full_server_message(exc: BaseException) -> str:
    """One sentence for a refused connection: what happened, that it is the shared server, who can fix it."""
    text = str(full_server_error(exc) or exc)
    role = re.search(r'too many connections for role "([^"]+)"', text)
    database = re.search(r'too many connections for database "([^"]+)"', text)
    if role:
        what = f"the role {role.group(1)} already has as many connections open as its CONNECTION LIMIT allows"
        fix = f"ask the instructor to raise it (ALTER ROLE {role.group(1)} CONNECTION LIMIT ...)"
    elif database:
        what = f"the database {database.group(1)} already has as many connections open as its CONNECTION LIMIT allows"
        fix = f"ask the instructor to raise it (ALTER DATABASE {database.group(1)} CONNECTION LIMIT ...)"
    else:
        what = "all of its connections are in use (max_connections is reached)"
        fix = "ask the instructor to raise max_connections on that server or to shut down idle notebooks"
    return (
        f"The course's shared PostgreSQL server refused a new connection because {what}; "
        f"this is the room's server, not your code: {fix}, then run this cell again."
    )


# --- counting connections from the server's own log -----------------------------------------

# With log_connections and log_disconnections on, every session leaves two lines, in the order the
# server saw them: "[pid] LOG:  connection authorized: user=... database=... application_name=..."
# and "[pid] LOG:  disconnection: ...". Replaying them counts sessions exactly, however short.
_AUTHORIZED = re.compile(r"\[(\d+)\][^\n]*?connection authorized: user=(\S+) database=(\S+)(?: application_name=(.*))?")
_DISCONNECTED = re.compile(r"\[(\d+)\][^\n]*?disconnection: session time")
LOG_SETTINGS = {"log_connections": "on", "log_disconnections": "on", "log_line_prefix": "'%m [%p] '"}


async def enable_connection_log(admin_url: str) -> None:
    """Make the server log every connection and disconnection (superuser; new sessions only)."""
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        for name, value in LOG_SETTINGS.items():
            await conn.execute(f"ALTER SYSTEM SET {name} = {value}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    # A session started after the postmaster re-read its configuration sees the new value.
    for _ in range(100):
        probe = await asyncpg.connect(admin_url, timeout=10)
        try:
            if await probe.fetchval("SHOW log_disconnections") == "on":
                return
        finally:
            await probe.close()
    raise RuntimeError("the server did not pick up log_connections")


@dataclass
class Peaks:
    """The most sessions open at once: on the whole server, and per group of databases."""

    total: int = 0
    groups: dict[str, int] = field(default_factory=dict)
    sessions: int = 0  # sessions that started in the window
    refused: int = 0  # connections refused with "too many clients" / CONNECTION LIMIT
    peak_at: int = 0  # offset in the log text of the line where ``total`` was first reached
    groups_peak_at: dict[str, int] = field(default_factory=dict)  # the same, per group


def connection_peaks(log_text: str, group_of=None, skipped: Iterable[tuple[int, int]] = ()) -> Peaks:
    """Replay a server log; ``group_of(database, application_name)`` names a session's group (or None).

    Sessions already open when the log text starts are not seen: start reading at a quiet moment.
    Sessions that start inside a ``skipped`` (start, end) range of the text are not counted at all.
    """
    open_now: dict[str, str | None] = {}
    per_group: dict[str, int] = {}
    peaks = Peaks()
    skipped = list(skipped)
    ignored: set[str] = set()
    offset = 0
    for line in log_text.splitlines(keepends=True):
        at, offset = offset, offset + len(line)
        match = _AUTHORIZED.search(line)
        if match and any(start <= at < end for start, end in skipped):
            ignored.add(match.group(1))
            continue
        if match:
            pid, _user, database, app = match.groups()
            group = group_of(database, (app or "").strip()) if group_of else None
            open_now[pid] = group
            peaks.sessions += 1
            if len(open_now) > peaks.total:
                peaks.total, peaks.peak_at = len(open_now), at
            if group is not None:
                per_group[group] = per_group.get(group, 0) + 1
                if per_group[group] > peaks.groups.get(group, 0):
                    peaks.groups[group], peaks.groups_peak_at[group] = per_group[group], at
            continue
        match = _DISCONNECTED.search(line)
        if match and match.group(1) in ignored:
            ignored.discard(match.group(1))
            continue
        if match and match.group(1) in open_now:
            group = open_now.pop(match.group(1))
            if group is not None:
                per_group[group] -= 1
            continue
        if "too many clients already" in line or "too many connections for" in line or "slots are reserved" in line:
            peaks.refused += 1
    return peaks


# --- the instructor's view ------------------------------------------------------------------


async def headroom(conn: asyncpg.Connection) -> dict:
    """max_connections, sessions in use, and how many more connections learners can open."""
    max_connections = int(await conn.fetchval("SHOW max_connections"))
    reserved = int(await conn.fetchval("SHOW superuser_reserved_connections"))
    used = int(  # every client session but the one asking
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    )
    return {
        "max_connections": max_connections,
        "reserved": reserved,
        "used": used,
        "headroom": max(max_connections - reserved - used, 0),
    }


def describe_headroom(info: dict) -> str:
    return (
        f"{info['used']} of max_connections {info['max_connections']} in use ({info['reserved']} reserved for "
        f"superusers): room for {info['headroom']} more, about {info['headroom'] // BUDGET} more learners"
    )


def measured_figures(path: Path | None = None) -> dict:
    """Per-learner figures from benchmarks/room.py's last run (or ``path``), or the course's design figures."""
    figures = {"per_learner_connections": BUDGET, "per_learner_memory_mb": 40.0, "server_base_memory_mb": 150.0}
    figures["source"] = "the course's design budget (run benchmarks/room.py for measured figures)"
    try:
        stored = json.loads((path or benchmark_results("room")).read_text())
    except (OSError, ValueError, CourseDBError):  # no results, or no course checkout to hold them
        return figures
    measured = stored.get("figures") or {}
    if measured.get("per_learner_connections"):
        figures.update(measured)
        figures["source"] = f"measured by benchmarks/room.py ({stored.get('measured', 'date unknown')})"
    return figures


def room_needs(learners: int, figures: dict | None = None) -> dict:
    """Connections and memory a server needs for ``learners`` learners at once."""
    figures = figures or measured_figures()
    # The budget the tests enforce is the bound (a learner who solved the exercises reaches it);
    # a measured run of unsolved books usually stays below it.
    per_learner = max(int(figures["per_learner_connections"]), BUDGET)
    connections = learners * per_learner + SERVER_RESERVE
    memory_mb = figures["server_base_memory_mb"] + learners * figures["per_learner_memory_mb"]
    return {
        "learners": learners,
        "per_learner_connections": per_learner,
        "connections": connections,
        "max_connections": _round_up(connections, 10),
        "memory_mb": round(memory_mb),
        "source": figures["source"],
    }


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def describe_needs(needs: dict) -> Iterable[str]:
    yield (
        f"A room of {needs['learners']} learners needs {needs['connections']} connections at most "
        f"({needs['per_learner_connections']} per learner + {SERVER_RESERVE} reserved for superusers and you): "
        f"set max_connections = {needs['max_connections']} or more."
    )
    yield (
        f"Server memory: about {needs['memory_mb']} MB used by PostgreSQL's processes at that size, as measured "
        "(proportional set size); add what you give shared_buffers beyond its default."
    )
    yield f"Figures: {needs['source']}."


def sizing_table(learners: Iterable[int] = (30, 60, 100), figures: dict | None = None) -> str:
    """Markdown: connections, max_connections and server memory for rooms of these sizes."""
    figures = figures or measured_figures()
    lines = ["| learners | connections at most | set max_connections to | server memory |", "|---|---|---|---|"]
    for n in learners:
        needs = room_needs(n, figures)
        lines.append(f"| {n} | {needs['connections']} | {needs['max_connections']} | about {needs['memory_mb']} MB |")
    return "\n".join(lines)


# --- a role per learner -----------------------------------------------------------------------

# A learner's CONNECTION LIMIT: two notebooks open at once, even two at the largest budget
# (07's pytest -n 2 demo). It stops a runaway notebook, not a learner working normally.
LEARNER_CONNECTION_LIMIT = 2 * max(BUDGET, MAX_NOTEBOOK_BUDGET)
CREDENTIALS_FILE = "room-credentials.json"
# COMMENT ON ROLE marks the roles coursedb made, so that `room add` never takes over another role.
_LEARNER_MARK = "coursedb learner "
_INSTRUCTOR_MARK = "coursedb instructor"


@dataclass(frozen=True)
class RoomRole:
    """One role ``room add`` made or found: for a learner (``learner`` set) or the instructor."""

    learner: str | None
    role: str
    url: str  # its COURSEDB_URL, password included
    made: bool  # created now (else it was there already)
    new_password: bool  # its password was (re)set now


def role_url(base_url: str, role: str, password: str) -> str:
    """``base_url`` (the room server, as the instructor reaches it) logged in as ``role``."""
    parts = urlsplit(base_url)
    hosts = parts.netloc.rpartition("@")[2]
    query = "&".join(
        item for item in parts.query.split("&") if item and item.partition("=")[0].lower() not in ("user", "password")
    )
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{hosts}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def read_credentials(path: Path) -> dict:
    """The credentials file ``room add`` writes: {"learners": {name: {"role", "url"}}, "instructor": {...}}."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def _write_credentials(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # passwords: the instructor's eyes only
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802, 7677), made here: the password
    itself never reaches the server, nor a log of the statements it runs."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


async def _ensure_role(
    conn: asyncpg.Connection, role: str, mark: str, known_url: str | None, base_url: str, options: str
) -> tuple[str, bool, bool]:
    """Create ``role`` (or find the one coursedb made before); return its URL, made, new password."""
    row = await conn.fetchrow(
        "SELECT shobj_description(oid, 'pg_authid') AS mark FROM pg_roles WHERE rolname = $1", role
    )
    if row is not None and row["mark"] != mark:
        raise CourseDBError(
            f"A role named {role} already exists on this server and coursedb did not make it; "
            "drop or rename it, or give that learner another name."
        )
    ident = quote_ident(role)
    known = urlsplit(known_url).password if known_url else None
    password = unquote(known) if row is not None and known else secrets.token_urlsafe(18)
    if row is None:
        await conn.execute(f"CREATE ROLE {ident} LOGIN {options} PASSWORD {literal(scram_verifier(password))}")
        await conn.execute(f"COMMENT ON ROLE {ident} IS {literal(mark)}")
    else:
        # Idempotent: the same rights as a new one (an instructor may have changed them by hand).
        await conn.execute(f"ALTER ROLE {ident} LOGIN {options}")
        if not known:
            await conn.execute(f"ALTER ROLE {ident} PASSWORD {literal(scram_verifier(password))}")
    return role_url(base_url, role, password), row is None, not (row is not None and known)


async def add_learners(admin_url: str, learners: Iterable[str], path: Path) -> list[RoomRole]:
    """A role per learner (CREATEDB, CONNECTION LIMIT), and one instructor role that is a member of
    each; their credentials go to ``path`` (mode 0600), kept when they are there already."""
    stored = read_credentials(path)
    by_learner = stored.get("learners") if isinstance(stored.get("learners"), dict) else {}
    done: list[RoomRole] = []
    async with databases.admin_connection(admin_url) as conn:
        instructor = stored.get("instructor") if isinstance(stored.get("instructor"), dict) else {}
        url, made, new = await _ensure_role(
            conn, names.INSTRUCTOR_ROLE, _INSTRUCTOR_MARK, instructor.get("url"), admin_url, "CREATEDB"
        )
        done.append(RoomRole(None, names.INSTRUCTOR_ROLE, url, made, new))
        for learner in learners:
            role = names.learner_role(learner)
            known = by_learner.get(learner) if isinstance(by_learner.get(learner), dict) else {}
            options = f"CREATEDB CONNECTION LIMIT {LEARNER_CONNECTION_LIMIT}"
            mark = _LEARNER_MARK + learner
            url, made, new = await _ensure_role(conn, role, mark, known.get("url"), admin_url, options)
            # The instructor sees what the learner's role owns: every database and table of theirs.
            await conn.execute(f"GRANT {quote_ident(role)} TO {quote_ident(names.INSTRUCTOR_ROLE)}")
            done.append(RoomRole(learner, role, url, made, new))
    stored["instructor"] = {"role": done[0].role, "url": done[0].url}
    stored["learners"] = {**by_learner, **{r.learner: {"role": r.role, "url": r.url} for r in done[1:]}}
    _write_credentials(path, stored)
    return done


def describe_added(added: list[RoomRole], path: Path) -> Iterable[str]:
    for entry in added:
        how = "made" if entry.made else ("there already, new password" if entry.new_password else "there already")
        if entry.learner is None:
            yield f"instructor: role {entry.role} ({how}) sees every learner's databases; its COURSEDB_URL is in {path}"
        else:
            yield (
                f"{entry.learner}: role {entry.role} ({how}; CREATEDB, CONNECTION LIMIT {LEARNER_CONNECTION_LIMIT}); "
                f"its COURSEDB_URL is in {path}"
            )


async def isolation(conn: asyncpg.Connection) -> str:
    """What other people on this server can do to the databases of the role ``conn`` logs in as."""
    row = await conn.fetchrow(
        "SELECT rolsuper, shobj_description(oid, 'pg_authid') AS mark FROM pg_roles WHERE rolname = current_user"
    )
    role = await conn.fetchval("SELECT current_user")
    mark = (row["mark"] if row else None) or ""
    if row is not None and row["rolsuper"]:
        return f"role {role} is a superuser: it can open every database on this server, and nobody else can open yours"
    if mark.startswith(_LEARNER_MARK):
        learner = mark.removeprefix(_LEARNER_MARK)
        return f"isolated: role {role} is {learner}'s alone; no other learner can open its databases"
    if mark == _INSTRUCTOR_MARK:
        return f"instructor: role {role} can open every learner's databases"
    return (
        f"TRUSTING: everyone who logs in as role {role} (the whole room, if it shares one role) can open, read and "
        "drop the databases of everyone else on it; give each learner a role: python -m coursedb room add NAME ..."
    )
