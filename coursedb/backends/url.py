"""A server you already run, named by ``COURSEDB_URL``: coursedb neither starts nor stops it.

It may serve a whole room (many machines, many roles), so ``stop`` here only drops this
user's databases and those of ended owners, never one a live owner elsewhere uses.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import asyncpg

from .. import databases, room
from .._aio import run_sync
from ..errors import CourseDBError, reason
from ..settings import Settings, describe_url
from .base import ServerState

NAME = "url"
STATE_FIELDS: tuple[str, ...] = ()  # admin_url, which every record has, is all it needs
RUNS_SERVER = False  # not ours to start or stop: it is where COURSEDB_URL says


POOLED = (
    "COURSEDB_URL ({shown}) goes through a connection pooler in transaction or statement mode (such as "
    "PgBouncer's pool_mode = transaction), which lends each transaction any server session, so no session "
    "of yours can keep your databases alive there; point COURSEDB_URL at the server's own port, or at a pool "
    "in session mode (pool_mode = session)."
)


async def _connect(url: str) -> asyncpg.Connection:
    # No statement cache: behind a transaction pooler, asyncpg's named statements collide with
    # other clients' before this check can say what is wrong.
    return await asyncpg.connect(url, timeout=databases.CONNECT_TIMEOUT, statement_cache_size=0)


async def keeps_sessions(url: str, conn: asyncpg.Connection, backend: int) -> bool:
    """Behind a pooler: does ``conn`` keep the one server session (``backend``) it got, between transactions?

    A pooler in session mode lends a client one server session until it disconnects; in
    transaction or statement mode it returns the session to the pool after each transaction.
    So end ``backend`` from a second client: a client that keeps its session is ended with it
    (the pooler closes it), one that does not carries on in another. No timing is involved:
    the second client waits until the server has ended ``backend``, and the pooler has seen it
    go before it answers that client, so before ``conn`` asks again.
    """
    try:
        other = await _connect(url)
    except databases.DB_ERRORS:
        return True  # no second client (the pool is full?): we cannot tell, so we do not refuse
    try:
        ended = await other.fetchval(
            "SELECT CASE WHEN pg_backend_pid() = $1 THEN NULL ELSE pg_terminate_backend($1, 10000) END", backend
        )
    except asyncpg.InsufficientPrivilegeError:
        return True  # the pooler logs in as another role: we cannot tell, so we do not refuse
    finally:
        await other.close()
    if ended is None:
        return False  # the second client ran in the first one's server session: lent, not kept
    if not ended:
        return True  # not ended within 10 s: we cannot tell, so we do not refuse
    try:
        await conn.fetchval("SELECT 1", timeout=databases.CONNECT_TIMEOUT)
    except databases.DB_ERRORS:
        return True
    return False


async def check_access(url: str) -> None:
    """Connect to ``url``, check its role may create databases and that no transaction pooler
    stands between; one sentence if not."""
    shown = describe_url(url)
    try:
        conn = await _connect(url)
    except (OSError, asyncio.TimeoutError) as exc:  # gaierror is an OSError
        if "SSL" in str(exc) and "sslmode" in url:
            raise CourseDBError(
                f"The server at {shown} does not offer SSL, which the sslmode in COURSEDB_URL requires ({exc}); "
                "remove sslmode=require from COURSEDB_URL (or use sslmode=prefer), or enable SSL on the server."
            ) from None
        raise CourseDBError(
            f"Cannot reach the PostgreSQL server at {shown} ({reason(exc)}); "
            "check host and port in COURSEDB_URL, or unset it to use the embedded server."
        ) from None
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise CourseDBError(f"The server at {shown} refused the login ({exc}); check user and password.") from None
    except asyncpg.InvalidCatalogNameError as exc:
        raise CourseDBError(f"The server at {shown} has no such database ({exc}); check COURSEDB_URL.") from None
    except asyncpg.InternalClientError as exc:  # e.g. PGTARGETSESSIONATTRS=read-only against a primary
        raise CourseDBError(
            f"Cannot use COURSEDB_URL={shown}: {exc}. A PG* variable in your environment (PGTARGETSESSIONATTRS, "
            "PGSSLMODE...) may be meant for another server; unset it or override it in COURSEDB_URL."
        ) from None
    except asyncpg.TooManyConnectionsError as exc:
        raise CourseDBError(room.full_server_message(exc)) from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise CourseDBError(f"Cannot use COURSEDB_URL={shown}: {exc}") from None
    try:
        row = await conn.fetchrow(
            "SELECT pg_backend_pid() AS backend, rolcreatedb OR rolsuper AS can_create"
            " FROM pg_roles WHERE rolname = current_user"
        )
        # Directly connected, the process key the server sent at login is its own pid; a pooler
        # (or any proxy) sends one of its own making.
        if row["backend"] != conn.get_server_pid() and not await keeps_sessions(url, conn, row["backend"]):
            raise CourseDBError(POOLED.format(shown=shown))
    finally:
        await conn.close()
    if not row["can_create"]:
        raise CourseDBError(
            f"The user in COURSEDB_URL ({shown}) may not create databases; "
            "grant it CREATEDB (ALTER ROLE <user> CREATEDB) or use another server."
        )


def start(settings: Settings) -> ServerState:
    assert settings.url is not None
    run_sync(check_access(settings.url))
    return ServerState(backend=NAME, admin_url=settings.url, home=str(settings.home))


def serves(settings: Settings, state: ServerState) -> bool:
    return state.admin_url == settings.url


def unrecorded(settings: Settings) -> ServerState | None:
    """A room server's stale databases can be cleared from any machine, state file or not."""
    if settings.url is None or settings.backend not in ("auto", NAME):
        return None
    return ServerState(backend=NAME, admin_url=settings.url, home=str(settings.home))


def alive(state: ServerState) -> bool:
    return True  # not ours to start or stop; connecting tells the truth


def stop(settings: Settings, state: ServerState | None, keep_files: bool = False) -> list[str]:
    """Drop the stale databases (and, once no owner lives, the templates); the server keeps running."""
    if state is None or state.backend != NAME or keep_files:
        return []
    shown = describe_url(state.admin_url)
    try:
        done = run_sync(_drop_unused(state.admin_url, shown, settings.sweep_grace))
    except databases.DB_ERRORS as exc:
        raise CourseDBError(
            f"The server at {shown} could not be asked which coursedb databases are unused ({reason(exc)}), "
            "so nothing was dropped there; it keeps running (coursedb did not start it, so it does not stop it)."
        ) from None
    return [*done, f"left the server at {shown} running: coursedb did not start it, so it does not stop it"]


async def _drop_unused(admin_url: str, shown: str, grace: float) -> list[str]:
    """Never a database whose lock a live owner holds (here or on another machine), nor one whose
    owner may still come back: the same rule as every sweep (databases.drop_stale)."""
    async with databases.admin_connection(admin_url) as conn:
        swept = await databases.drop_stale(conn, grace)
        entries = await databases.list_owned(conn)
        live = [d.name for d in entries if d.kind == "owner" and d.locked]
        dropped = list(swept.dropped)
        refused = [name for name, _ in swept.skipped]
        if not live and not swept.waiting:  # last: nobody clones from a template any more
            for d in entries:
                if d.kind not in ("template", "old template") or d.name in dropped:
                    continue
                if not d.may_drop:  # only this role's own: an instructor may drop its learners', never should
                    refused.append(d.name)
                    continue
                try:
                    await databases.drop_database(conn, d.name)
                    dropped.append(d.name)
                except databases.NOT_OURS:
                    refused.append(d.name)  # another role's template on a shared server
        foreign = [d.name for d in entries if d.kind == "not coursedb's"]
    done = [f"dropped {len(dropped)} coursedb database(s) on {shown}"]
    if refused:
        done.append(f"left {len(refused)} owned by other users: {', '.join(refused)}")
    if live:
        done.append(f"left {len(live)} in use by live owners (here or on other machines): {', '.join(live)}")
    if swept.waiting:
        waiting = ", ".join(f"{n} (lock free for {swept.free_for[n]:.0f} s)" for n in swept.waiting)
        done.append(
            f"left {len(swept.waiting)} whose lock is free, for their owners to come back "
            f"(a sweep drops one once free for {grace:g} s): {waiting}"
        )
    if foreign:
        done.append(f"left {len(foreign)} not made by coursedb: {', '.join(foreign)}")
    return done


def describe(state: ServerState) -> list[tuple[str, str]]:
    where = urlsplit(state.admin_url)
    return [
        ("server", f"{where.hostname or 'local socket'}:{where.port or 5432}, from COURSEDB_URL (its owner runs it)"),
        ("tcp url", f"{describe_url(state.admin_url)}  (password in COURSEDB_URL)"),
        ("log", "kept by whoever runs that server"),
    ]
