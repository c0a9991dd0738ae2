"""A server you already run, named by ``COURSEDB_URL``: coursedb neither starts nor stops it.

It may serve a whole room (many machines, many roles), so ``stop`` here only drops this
user's databases and those of ended owners, never one a live owner elsewhere uses.
"""

from __future__ import annotations

import asyncio

import asyncpg

from .. import databases
from .._aio import run_sync
from ..errors import CourseDBError
from ..settings import Settings, describe_url
from .base import ServerState

NAME = "url"


async def check_access(url: str) -> None:
    """Connect to ``url`` and check its role may create databases; one sentence if not."""
    shown = describe_url(url)
    try:
        conn = await asyncpg.connect(url, timeout=databases.CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError) as exc:  # gaierror is an OSError
        raise CourseDBError(
            f"Cannot reach the PostgreSQL server at {shown} ({exc.__class__.__name__}: {exc}). "
            "Check host and port in COURSEDB_URL, or unset it to use the embedded server."
        ) from None
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise CourseDBError(f"The server at {shown} refused the login ({exc}); check user and password.") from None
    except asyncpg.InvalidCatalogNameError as exc:
        raise CourseDBError(f"The server at {shown} has no such database ({exc}); check COURSEDB_URL.") from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise CourseDBError(f"Cannot use COURSEDB_URL={shown}: {exc}") from None
    try:
        can_create = await conn.fetchval("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await conn.close()
    if not can_create:
        raise CourseDBError(
            f"The user in COURSEDB_URL ({shown}) may not create databases; "
            "grant it CREATEDB (ALTER ROLE <user> CREATEDB) or use another server."
        )


def start(settings: Settings) -> ServerState:
    assert settings.url is not None
    run_sync(check_access(settings.url))
    return ServerState(backend=NAME, admin_url=settings.url, home=str(settings.home))


def alive(state: ServerState) -> bool:
    return True  # not ours to start or stop; connecting tells the truth


def stop(settings: Settings, state: ServerState | None, keep_files: bool = False) -> list[str]:
    if state is None or state.backend != NAME or keep_files:
        return []
    shown = describe_url(state.admin_url)
    try:
        return run_sync(_drop_ours(state.admin_url, shown))
    except databases.DB_ERRORS as exc:
        return [f"could not drop coursedb databases on {shown}: {exc}"]


async def _drop_ours(admin_url: str, shown: str) -> list[str]:
    async with databases.admin_connection(admin_url) as conn:
        entries = [d for d in await databases.list_owned(conn) if d.name != databases.TEMPLATE]
        names = [d.name for d in entries if not d.alive or databases.owned_here(d.owner)]
        in_use = [d.name for d in entries if d.name not in names]
        if not in_use:
            names.append(databases.TEMPLATE)  # last: nobody clones from it any more
        dropped, refused = [], []
        for name in names:
            try:
                await databases.drop_database(conn, name)
                dropped.append(name)
            except asyncpg.InsufficientPrivilegeError:
                refused.append(name)  # another role's database on a shared server
    done = [f"dropped {len(dropped)} coursedb database(s) on {shown}"]
    if refused:
        done.append(f"left {len(refused)} owned by other users: {', '.join(refused)}")
    if in_use:
        done.append(f"left {len(in_use)} in use by other users or machines: {', '.join(in_use)}")
    return done


def describe(state: ServerState) -> list[tuple[str, str]]:
    return []
