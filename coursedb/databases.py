"""Databases on the shared server: one template with the course schema, one clone per owner.

An owner is a process that needs a database of its own: a notebook kernel, a pytest
session, a pytest-xdist worker. Who owns a database is written in its COMMENT, so the
server itself knows, and any later start can drop the databases of owners that died.
Every admin connection is opened by ``admin_connection()`` and closed by it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from .errors import CourseDBError
from .migrate import migrate, schema_fingerprint
from .settings import DB_PREFIX

TEMPLATE = DB_PREFIX + "template"
CONNECT_TIMEOUT = 10
# What talking to a server can raise. asyncio.TimeoutError is listed for Python 3.10, where it
# is not yet the builtin TimeoutError (an OSError) that asyncpg's connect timeout raises on 3.11+.
DB_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True)
class OwnedDatabase:
    """A ``coursedb_*`` database on the server, as ``coursedb status`` shows it."""

    name: str
    owner: dict | None  # the owner record from its COMMENT; None for the template or a bare one
    connections: int
    alive: bool


def url_for(admin_url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + dbname))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@asynccontextmanager
async def admin_connection(admin_url: str, database: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the server's admin database (or ``database``), always closed afterwards."""
    url = admin_url if database is None else url_for(admin_url, database)
    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    try:
        yield conn
    finally:
        await conn.close()


# --- owners ---------------------------------------------------------------------------------


def owner_record(kind: str) -> dict:
    me = psutil.Process()
    return {
        "host": socket.gethostname(),
        "uid": os.getuid(),
        "pid": me.pid,
        "started": round(me.create_time(), 2),
        "kind": kind,
        "cwd": os.getcwd(),
        "created": round(time.time()),
    }


def owned_here(owner: dict | None) -> bool:
    """Made by this user on this machine (records without a uid predate it: assume ours)."""
    return bool(owner) and owner.get("host") == socket.gethostname() and owner.get("uid", os.getuid()) == os.getuid()


def owner_alive(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return True  # another machine's: not ours to judge
    try:
        proc = psutil.Process(int(owner["pid"]))
        return abs(proc.create_time() - float(owner["started"])) < 1.0
    except (psutil.Error, KeyError, ValueError, TypeError):
        return False


def _creator_alive(name: str) -> bool:
    pid = name.removeprefix(DB_PREFIX).split("_", 1)[0]
    return pid.isdigit() and psutil.pid_exists(int(pid))


def owner_kind() -> str:
    """What kind of owner this process is, for `coursedb status`."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        return f"xdist {worker}"
    ipython = sys.modules.get("IPython")
    if ipython is not None and type(ipython.get_ipython()).__name__ == "ZMQInteractiveShell":
        return "kernel"
    if "pytest" in sys.modules or "_pytest" in sys.modules:
        return "pytest"
    return "python"


# --- the template ---------------------------------------------------------------------------


async def ensure_template(admin_url: str) -> None:
    """Create (or rebuild, if the migrations changed) the template database."""
    fingerprint = schema_fingerprint()
    async with admin_connection(admin_url) as conn:
        row = await conn.fetchrow(
            "SELECT shobj_description(oid, 'pg_database') AS comment, datistemplate FROM pg_database"
            " WHERE datname = $1",
            TEMPLATE,
        )
        if row is not None and row["comment"] == f"schema {fingerprint}" and row["datistemplate"]:
            return
        await drop_database(conn, TEMPLATE)
        await _create_database(conn, TEMPLATE, template="template0")
        async with admin_connection(admin_url, TEMPLATE) as tconn:
            await migrate(tconn)
        await conn.execute(f"COMMENT ON DATABASE {quote_ident(TEMPLATE)} IS 'schema {fingerprint}'")
        # Marked as a template, any role with CREATEDB may clone it, not only its owner: on a
        # shared COURSEDB_URL server, the second user's first clone works too.
        await conn.execute(f"ALTER DATABASE {quote_ident(TEMPLATE)} IS_TEMPLATE true")


async def _create_database(conn: asyncpg.Connection, name: str, template: str) -> None:
    # CREATE DATABASE ... TEMPLATE fails while anyone else is connected to the template.
    # Only coursedb connects to it, briefly, so a short retry is enough.
    for attempt in range(50):
        try:
            await conn.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template)}")
            return
        except asyncpg.ObjectInUseError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)
        except asyncpg.InsufficientPrivilegeError as exc:
            if "create database" not in str(exc):
                raise CourseDBError(f"The server refused to create database {name} from {template}: {exc}.") from None
            raise CourseDBError(
                "The database user in COURSEDB_URL may not create databases; "
                "grant it CREATEDB (ALTER ROLE <user> CREATEDB) or use another server."
            ) from None


# --- owners' databases ----------------------------------------------------------------------


async def create_owned(admin_url: str, kind: str) -> str:
    """Clone the template into a new database owned by this process; return its name."""
    async with admin_connection(admin_url) as conn:
        return await _create_owned(conn, admin_url, kind)


async def take_database(admin_url: str, kind: str) -> str:
    """Drop the databases of ended owners, then clone one for this process: one connection."""
    async with admin_connection(admin_url) as conn:
        await drop_stale(conn)
        return await _create_owned(conn, admin_url, kind)


async def _create_owned(conn: asyncpg.Connection, admin_url: str, kind: str) -> str:
    owner = owner_record(kind)
    name = f"{DB_PREFIX}{owner['pid']}_{secrets.token_hex(3)}"
    try:
        await _create_database(conn, name, TEMPLATE)
    except asyncpg.InvalidCatalogNameError:
        # Someone dropped the template while the server ran (a learner's DROP DATABASE,
        # 'coursedb stop' of a url backend from another home): rebuild it, once.
        await ensure_template(admin_url)
        await _create_database(conn, name, TEMPLATE)
    await conn.execute(f"COMMENT ON DATABASE {quote_ident(name)} IS {_literal(json.dumps(owner))}")
    return name


async def list_owned(conn: asyncpg.Connection) -> list[OwnedDatabase]:
    """Every database coursedb made on this server, with its owner and whether it lives."""
    rows = await conn.fetch(
        "SELECT datname, shobj_description(oid, 'pg_database') AS comment,"
        " (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) AS connections"
        " FROM pg_database d WHERE starts_with(datname, $1) ORDER BY datname",
        DB_PREFIX,
    )
    out = []
    for row in rows:
        try:
            owner = json.loads(row["comment"] or "")
        except ValueError:
            owner = None
        if not isinstance(owner, dict):
            owner = None
        if row["datname"] == TEMPLATE:
            alive = True
        elif owner:
            alive = owner_alive(owner)
        else:
            # No owner record yet: CREATE DATABASE and its COMMENT are two statements, and
            # another process may look in between. The name carries the creator's PID.
            alive = _creator_alive(row["datname"])
        out.append(OwnedDatabase(row["datname"], owner, row["connections"], alive))
    return out


async def drop_database(conn: asyncpg.Connection, name: str) -> None:
    """DROP DATABASE ... WITH (FORCE), even a template; only ever a ``coursedb_*`` one."""
    if not name.startswith(DB_PREFIX):
        raise ValueError(f"refusing to drop {name!r}: coursedb only drops databases it made")
    exists_as_template = await conn.fetchval("SELECT datistemplate FROM pg_database WHERE datname = $1", name)
    if exists_as_template:
        await conn.execute(f"ALTER DATABASE {quote_ident(name)} IS_TEMPLATE false")  # templates cannot be dropped
    await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


async def drop(admin_url: str, name: str) -> None:
    """Drop one ``coursedb_*`` database over a connection of its own."""
    if not name.startswith(DB_PREFIX):
        raise ValueError(f"refusing to drop {name!r}: coursedb only drops databases it made")
    async with admin_connection(admin_url) as conn:
        await drop_database(conn, name)


async def drop_stale(conn: asyncpg.Connection) -> list[str]:
    """Drop databases whose owner process is gone (a killed kernel, a crashed run); return their names."""
    stale = [d.name for d in await list_owned(conn) if not d.alive]
    for name in stale:
        await drop_database(conn, name)
    return stale


async def exists(admin_url: str, name: str) -> bool:
    async with admin_connection(admin_url) as conn:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
