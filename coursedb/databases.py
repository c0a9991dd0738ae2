"""Databases on the shared server: a template per schema version, one clone per owner.

An owner is a process that needs a database of its own: a notebook kernel, a pytest
session, a pytest-xdist worker. Its session holds the advisory lock the database's name
encodes (see ``keeper``). A session can be lost for a moment (cut by an administrator or a
timeout, a network blip, a server restart) and comes back within ``keeper.RECONNECT_BOUND``,
so a free lock proves nothing by itself: a sweep drops a database only once its lock has been
free for the whole grace (``Settings.sweep_grace``), as the server's clock measures it.

The evidence lives in the database's COMMENT, which its role may write on any server: who made
it (for ``coursedb status``) and, once a sweep has found its lock free, since when (the
server's clock) and in which life of the server. A sweep marks and judges only while it holds
the lock itself, and an owner that takes its lock again clears the mark (``vouch``), so a mark
older than the grace means the lock was free all along. A mark from an earlier life of the
server (a restart, or crash recovery) starts the wait again: time the server was down, or
busy replaying WAL, never counts against an owner.

Templates are named after the migrations' fingerprint, so a new or changed migration gets a
new template while running owners keep their clones. Every short-lived admin connection is
opened by ``admin_connection()`` and closed by it.
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
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from . import names
from .errors import CourseDBError
from .migrate import migrate, schema_fingerprint
from .names import OWNER_LOCKS
from .settings import DEFAULT_SWEEP_GRACE, user_key

CONNECT_TIMEOUT = 10
COMMAND_TIMEOUT = 60  # a frozen server must not hang a start, a status or a sweep for ever
BUILD_WAIT = 100  # how long to wait for another process that builds the template
# The server's life: a restart changes its start time, crash recovery (which keeps the start
# time) resets the shared statistics. Anything else that changes it only makes a sweep wait longer.
SERVER_LIFE = "SELECT pg_postmaster_start_time() AS started, (SELECT stats_reset FROM pg_stat_bgwriter) AS reset"
UNLOCKED = "unlocked"  # the COMMENT's key for a sweep's mark: {"since": server epoch, "life": ...}
# What talking to a server can raise. asyncio.TimeoutError is listed for Python 3.10, where it
# is not yet the builtin TimeoutError (an OSError) that asyncpg's connect timeout raises on 3.11+.
# InternalClientError: e.g. target_session_attrs (PGTARGETSESSIONATTRS) not matched.
DB_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
# What a sweep may meet on a database that is not its to drop.
NOT_OURS = (asyncpg.InsufficientPrivilegeError, asyncpg.ReadOnlySQLTransactionError, asyncpg.ObjectInUseError)


def template_name(fingerprint: str | None = None, role: str | None = None) -> str:
    """The template for the migrations as they are on disk now (see ``names.template``).

    The tables in a clone belong to whoever built its template. On a room server with one
    role per learner, each role (that is not a superuser) builds and clones its own template,
    so every learner owns the tables in their database.
    """
    return names.template(fingerprint or schema_fingerprint(), role)


async def _template_role(conn: asyncpg.Connection) -> str | None:
    """None for a superuser (the one shared template), else the role's own name."""
    row = await conn.fetchrow("SELECT current_user AS role, rolsuper FROM pg_roles WHERE rolname = current_user")
    return None if row is None or row["rolsuper"] else row["role"]


@dataclass(frozen=True)
class OwnedDatabase:
    """A ``coursedb_*`` database on the server, as ``coursedb status`` shows it."""

    name: str
    kind: str  # "owner", "template" (current), "old template", or "not coursedb's"
    owner: dict | None  # who made it (kind, pid, host), from its COMMENT: for people, not for liveness
    role: str  # the role that owns it
    connections: int
    locked: bool  # owner databases: a live session holds its lock
    may_drop: bool  # this session's role may drop it
    free_for: float | None = None  # seconds sweeps have seen its lock free, in this life of the server

    @property
    def alive(self) -> bool:
        return self.kind != "owner" or self.locked


@dataclass
class Sweep:
    """What a sweep did, with what it saw: seconds each unlocked database's lock had been free."""

    grace: float
    dropped: list[str] = field(default_factory=list)  # free for the whole grace
    waiting: list[str] = field(default_factory=list)  # free, not for long enough yet
    skipped: list[tuple[str, str]] = field(default_factory=list)  # not ours to drop, and why
    free_for: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Life:
    """One life of the server: from a start, or from the end of a crash recovery."""

    started: float  # epoch seconds, the server's clock
    reset: float | None
    system: int | None = None  # the cluster's identifier (a new one after initdb), where the role may read it

    @property
    def key(self) -> str:
        return f"{self.started:.6f}/{self.reset or 0:.6f}"


async def server_life(conn: asyncpg.Connection, with_system: bool = False) -> Life:
    row = await conn.fetchrow(SERVER_LIFE)
    system = None
    if with_system:
        try:
            system = await conn.fetchval("SELECT system_identifier FROM pg_control_system()")
        except asyncpg.InsufficientPrivilegeError:
            pass  # some servers keep it from ordinary roles; a restart is then all the owner can tell
    return Life(row["started"].timestamp(), row["reset"].timestamp() if row["reset"] else None, system)


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
    conn = await asyncpg.connect(
        url,
        timeout=CONNECT_TIMEOUT,
        command_timeout=COMMAND_TIMEOUT,
        # whose session this is, in pg_stat_activity and the server's log (coursedb.room counts by it)
        server_settings={"application_name": names.admin_session(os.getpid())},
    )
    try:
        yield conn
    finally:
        try:
            await asyncio.wait_for(conn.close(), 5)
        except Exception:
            conn.terminate()


# --- owners ---------------------------------------------------------------------------------


def owner_record(kind: str) -> dict:
    """Who made a database, for people reading ``coursedb status``; liveness never reads it."""
    return {
        "kind": kind,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "uid": user_key(),
        "cwd": os.getcwd(),
        "created": round(time.time()),
    }


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


_MINE = "(SELECT oid FROM pg_roles WHERE rolname = current_user)"


async def _my_template(conn: asyncpg.Connection, fingerprint: str, usual: str) -> str | None:
    """This role's ready template for ``fingerprint``, whichever name it had to take; else None.

    Only a template this role owns is trusted: another role may create a database under any
    name first (even ours, marked IS_TEMPLATE), and a clone of it would hold that role's tables.
    IS_TEMPLATE is set last, so a template a killed builder left half-made is not ready.
    """
    rows = await conn.fetch(
        f"SELECT datname FROM pg_database WHERE datistemplate AND datdba = {_MINE} AND starts_with(datname, $1)"
        " ORDER BY datname = $2 DESC, oid",
        names.TEMPLATE_PREFIX,
        usual,
    )
    for row in rows:
        made = names.parse_template(row["datname"])
        if made is not None and made.fingerprint == fingerprint and not made.legacy:
            return row["datname"]
    return None


async def template_build_lock(conn: asyncpg.Connection) -> tuple[int, int]:
    """The advisory lock this role's processes hold while they build (or sweep) its templates."""
    return names.template_build_lock(await _template_role(conn))


async def _lock_holder(conn: asyncpg.Connection, lock: tuple[int, int]) -> asyncpg.Record | None:
    """Who holds an advisory lock in this database: server pid, role and application_name."""
    return await conn.fetchrow(
        "SELECT a.pid, a.usename, a.application_name, a.usename = current_user AS mine"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid = $1::int8::oid AND l.objid = $2::int8::oid",
        lock[0],
        lock[1] % 2**32,  # pg_locks shows the signed key as an unsigned oid
    )


async def _take_build_lock(conn: asyncpg.Connection, lock: tuple[int, int], name: str) -> None:
    """Wait for this role's build lock; one sentence if another role holds it, or one of ours too long."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUILD_WAIT
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *lock):
        holder = await _lock_holder(conn, lock)
        if holder is not None and not holder["mine"]:
            # Advisory locks are open to every role: only our own processes have a reason to take this one.
            raise CourseDBError(
                f"Your course template cannot be built: a session of role {holder['usename']} (server pid "
                f"{holder['pid']}) holds the lock only your own processes take while they build it; ask the "
                f"instructor to end that session (SELECT pg_terminate_backend({holder['pid']}))."
            )
        if loop.time() > deadline:
            session = names.parse_session(holder["application_name"] or "") if holder is not None else None
            who = f" (pid {session.pid})" if session is not None else ""
            raise CourseDBError(
                f"Another process of yours{who} has been building the course template {name} for {BUILD_WAIT} s; "
                "wait for it to finish, or end that process and try again."
            )
        await asyncio.sleep(0.1)


async def ensure_template(conn: asyncpg.Connection, admin_url: str) -> str:
    """This role's template for the current migrations, built first if missing; return its name.

    One process per role builds at a time (an advisory lock of that role's); the others wait and
    then clone it. Older templates stay until a sweep finds them unused: running owners never notice.
    """
    role = await _template_role(conn)
    fingerprint = schema_fingerprint()
    usual = names.template(fingerprint, role)
    found = await _my_template(conn, fingerprint, usual)
    if found is not None:
        return found
    lock = names.template_build_lock(role)
    await _take_build_lock(conn, lock, usual)
    try:
        found = await _my_template(conn, fingerprint, usual)
        if found is not None:
            return found
        # Half-made by a builder of ours that was killed (we hold the lock: nobody of ours builds now).
        for row in await conn.fetch(
            f"SELECT datname FROM pg_database WHERE NOT datistemplate AND datdba = {_MINE}"
            " AND starts_with(datname, $1)",
            names.TEMPLATE_PREFIX,
        ):
            made = names.parse_template(row["datname"])
            if made is not None and made.fingerprint == fingerprint:
                await drop_database(conn, row["datname"])
        name = usual
        if await exists(conn, name):  # another role took our usual name first: one it cannot guess
            name = names.template(fingerprint, role, salt=secrets.token_hex(16))
        await _create_database(conn, name, template="template0")
        async with admin_connection(admin_url, name) as tconn:
            await migrate(tconn)
        await _close_to_connections(conn, name)
        await conn.execute(f"COMMENT ON DATABASE {quote_ident(name)} IS 'schema {fingerprint}'")
        # Last: from now on it is ready. (Any role with CREATEDB may clone an IS_TEMPLATE database;
        # it holds the course's empty tables, nothing of the learner's.)
        await conn.execute(f"ALTER DATABASE {quote_ident(name)} IS_TEMPLATE true")
    finally:
        await conn.fetchval("SELECT pg_advisory_unlock($1, $2)", *lock)
    return name


async def _close_to_connections(conn: asyncpg.Connection, name: str) -> None:
    """Nobody connects to a finished template any more; a clone fails while anyone is connected.

    A session pooler keeps the migration's server connection open after we closed ours: end it.
    """
    await conn.execute(f"ALTER DATABASE {quote_ident(name)} ALLOW_CONNECTIONS false")
    await conn.execute(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
        " WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()",
        name,
    )


async def _create_database(conn: asyncpg.Connection, name: str, template: str) -> None:
    """Create ``name`` from ``template``, reachable by its owner alone (and superusers).

    PostgreSQL grants CONNECT on every new database to PUBLIC: on a room server any learner could
    open any other's. It is created closed to connections, so no other role gets in before the
    grant is revoked.
    """
    # CREATE DATABASE ... TEMPLATE fails while anyone else is connected to the template.
    # Only coursedb connects to it, briefly, so a short retry is enough.
    for attempt in range(50):
        try:
            await conn.execute(
                f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template)} ALLOW_CONNECTIONS false"
            )
            break
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
    await conn.execute(f"REVOKE ALL ON DATABASE {quote_ident(name)} FROM PUBLIC")
    await conn.execute(f"ALTER DATABASE {quote_ident(name)} ALLOW_CONNECTIONS true")


# --- owners' databases ----------------------------------------------------------------------


async def take_database(
    conn: asyncpg.Connection, admin_url: str, name: str, kind: str, grace: float = DEFAULT_SWEEP_GRACE
) -> Sweep:
    """Sweep, then clone the current template into ``name`` (whose lock ``conn``'s session holds)."""
    sweep = await drop_stale(conn, grace)
    template = await ensure_template(conn, admin_url)
    try:
        await _create_database(conn, name, template)
    except asyncpg.InvalidCatalogNameError:
        # Someone dropped the template between our check and the clone (a learner's DROP
        # DATABASE, a sweep of another course version): build it again, once.
        template = await ensure_template(conn, admin_url)
        await _create_database(conn, name, template)
    await _set_comment(conn, name, owner_record(kind))
    return sweep


async def create_owned(admin_url: str, kind: str) -> str:
    """Clone the current template into a new database with no session vouching for it.

    For measurements only (benchmarks): nothing holds its lock, so sweeps drop it after the grace.
    """
    async with admin_connection(admin_url) as conn:
        template = await ensure_template(conn, admin_url)
        while True:  # a name a sweep recognises as an owner's, with a lock key nobody holds
            name = names.owner_database(os.getpid(), secrets.randbits(4 * names.KEY_DIGITS))
            try:
                await _create_database(conn, name, template)
                return name
            except asyncpg.DuplicateDatabaseError:
                continue


# --- the COMMENT: who made it, and what sweeps saw ------------------------------------------


def _record(comment: str | None) -> dict:
    """The COMMENT as coursedb writes it (a JSON object); anyone else's text is kept as a note."""
    try:
        record = json.loads(comment or "")
    except ValueError:
        record = None
    if isinstance(record, dict):
        return record
    return {"note": comment} if comment else {}


async def _read_record(conn: asyncpg.Connection, name: str) -> dict | None:
    """The database's COMMENT as a dict, or None if there is no such database."""
    row = await conn.fetchrow(
        "SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1", name
    )
    return None if row is None else _record(row["comment"])


async def _set_comment(conn: asyncpg.Connection, name: str, record: dict) -> None:
    await conn.execute(f"COMMENT ON DATABASE {quote_ident(name)} IS {_literal(json.dumps(record))}")


async def vouch(conn: asyncpg.Connection, name: str) -> bool:
    """For the owner, holding ``name``'s lock again: clear a sweep's mark; False if the database is gone."""
    record = await _read_record(conn, name)
    if record is None:
        return False
    if record.pop(UNLOCKED, None) is not None:
        await _set_comment(conn, name, record)
    return True


def _free_for(record: dict, life: Life, now: float) -> float | None:
    """Seconds a sweep's mark says the lock has been free, if the mark is from this life of the server."""
    mark = record.get(UNLOCKED)
    if not isinstance(mark, dict) or mark.get("life") != life.key or not isinstance(mark.get("since"), float | int):
        return None
    free = now - mark["since"]
    return free if free >= 0 else None  # the server's clock went back: start again


# --- listing and sweeping -------------------------------------------------------------------


async def list_owned(conn: asyncpg.Connection) -> list[OwnedDatabase]:
    """Every ``coursedb_*`` database on this server: what it is, whose, and whether it lives."""
    return (await _list_owned(conn))[0]


async def _list_owned(conn: asyncpg.Connection) -> tuple[list[OwnedDatabase], Life]:
    rows = await conn.fetch(
        "SELECT d.datname, shobj_description(d.oid, 'pg_database') AS comment,"
        " pg_get_userbyid(d.datdba) AS role,"
        f" d.datdba = {_MINE}"  # never another role's, even one this role is a member of
        "   AND current_setting('default_transaction_read_only') = 'off' AS may_drop,"
        " (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) AS connections"
        " FROM pg_database d WHERE starts_with(d.datname, $1) ORDER BY d.datname",
        names.PREFIX,
    )
    held = {
        r["objid"]
        for r in await conn.fetch(
            "SELECT objid::int8 AS objid FROM pg_locks"
            " WHERE locktype = 'advisory' AND classid = $1::int8::oid AND objsubid = 2 AND granted",
            OWNER_LOCKS,
        )
    }
    life = await server_life(conn)
    now = (await conn.fetchval("SELECT clock_timestamp()")).timestamp()
    current = schema_fingerprint()
    out = []
    for row in rows:
        name = row["datname"]
        key = names.lock_key(name)
        made = names.parse_template(name)
        record = _record(row["comment"])
        if made is not None and made.fingerprint == current and not made.legacy:
            kind = "template"
        elif made is not None:
            kind = "old template"
        elif key is not None:
            kind = "owner"
        else:
            kind = "not coursedb's"
        locked = key is not None and key in held
        out.append(
            OwnedDatabase(
                name=name,
                kind=kind,
                owner={k: v for k, v in record.items() if k != UNLOCKED} if "pid" in record else None,
                role=row["role"],
                connections=row["connections"],
                locked=locked,
                may_drop=row["may_drop"],
                free_for=None if locked or kind != "owner" else _free_for(record, life, now),
            )
        )
    return out, life


async def drop_database(conn: asyncpg.Connection, name: str) -> None:
    """DROP DATABASE ... WITH (FORCE), even a template; only ever a ``coursedb_*`` one."""
    if not names.is_coursedbs(name):
        raise ValueError(f"refusing to drop {name!r}: coursedb only drops databases it made")
    exists_as_template = await conn.fetchval("SELECT datistemplate FROM pg_database WHERE datname = $1", name)
    if exists_as_template:
        await conn.execute(f"ALTER DATABASE {quote_ident(name)} IS_TEMPLATE false")  # templates cannot be dropped
    await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


async def drop(admin_url: str, name: str) -> None:
    """Drop one ``coursedb_*`` database over a connection of its own."""
    if not names.is_coursedbs(name):
        raise ValueError(f"refusing to drop {name!r}: coursedb only drops databases it made")
    async with admin_connection(admin_url) as conn:
        await drop_database(conn, name)


async def _judge(conn: asyncpg.Connection, name: str, life: Life, grace: float) -> float | None:
    """Holding ``name``'s lock: mark it free (first sight in this life), or drop it once free for ``grace``.

    Returns the seconds its lock has been free (0 on first sight), or None if an owner holds it now
    or it is gone. The lock keeps its owner from taking it back between what is read and what is done.
    """
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", OWNER_LOCKS, names.lock_key(name)):
        return None  # its owner is back (or another sweep is at it)
    try:
        record = await _read_record(conn, name)
        if record is None:
            return None
        now = (await conn.fetchval("SELECT clock_timestamp()")).timestamp()
        free = _free_for(record, life, now)
        if free is None:
            record[UNLOCKED] = {"since": now, "life": life.key}
            await _set_comment(conn, name, record)
            free = 0.0
        if free >= grace:
            await drop_database(conn, name)
        return free
    finally:
        await conn.fetchval("SELECT pg_advisory_unlock($1, $2)", OWNER_LOCKS, names.lock_key(name))


async def drop_stale(conn: asyncpg.Connection, grace: float = DEFAULT_SWEEP_GRACE) -> Sweep:
    """Drop the owner databases whose lock has been free for ``grace`` seconds, and old templates nobody uses.

    Marks the others it finds unlocked, so that a later sweep can tell how long. Leaves alone,
    and says why: databases this role may not drop (another learner's on a room server, a
    read-only session), and any ``coursedb_*`` database coursedb did not make. Never fails
    because of one of them. Never waits: the grace is measured between sweeps.
    """
    sweep = Sweep(grace=grace)
    entries, life = await _list_owned(conn)
    build_lock = await template_build_lock(conn)
    for d in entries:
        if d.kind != "owner" or d.locked:
            continue
        if not d.may_drop:
            sweep.skipped.append((d.name, f"owned by role {d.role}"))
            continue
        try:
            free = await _judge(conn, d.name, life, grace)
        except NOT_OURS as exc:
            sweep.skipped.append((d.name, str(exc)))
            continue
        if free is None:
            continue
        sweep.free_for[d.name] = free
        (sweep.dropped if free >= grace else sweep.waiting).append(d.name)
    for d in entries:
        if d.kind != "old template" or d.connections:
            continue
        if not d.may_drop:
            sweep.skipped.append((d.name, f"owned by role {d.role}"))
            continue
        # Not while someone builds one (it may be this one, for another version).
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *build_lock):
            continue
        try:
            await drop_database(conn, d.name)
            sweep.dropped.append(d.name)
        except NOT_OURS as exc:
            sweep.skipped.append((d.name, str(exc)))
        finally:
            await conn.fetchval("SELECT pg_advisory_unlock($1, $2)", *build_lock)
    return sweep


async def exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
