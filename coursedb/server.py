"""One shared server per machine and user, found through a state file and a lock."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import filelock

from . import databases, docker, embedded
from ._aio import run_sync
from .errors import CourseDBError
from .settings import Settings, secure_dir

# Long enough for a first Docker image pull by the holder; shorter than pytest-timeout (120 s)
# so a waiting test gets this sentence instead of a timeout traceback.
LOCK_TIMEOUT = 100


def state_file(settings: Settings) -> Path:
    return settings.home / "state.json"


class _Locked:
    """Serialize starts and stops across processes; released even if the holder is killed."""

    def __init__(self, settings: Settings) -> None:
        # As root the server user must traverse home to reach data and binaries; nothing more.
        secure_dir(settings.home, 0o711 if os.geteuid() == 0 else 0o700)
        self.path = settings.home / "lock"
        self.lock = filelock.FileLock(self.path, timeout=LOCK_TIMEOUT, mode=0o600)

    def __enter__(self) -> None:
        try:
            self.lock.acquire()
        except filelock.Timeout:
            raise CourseDBError(
                f"Another coursedb process has held {self.path} for {LOCK_TIMEOUT} s; "
                "wait for it to finish, or check 'python -m coursedb status'."
            ) from None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def read_state(settings: Settings) -> dict | None:
    try:
        state = json.loads(state_file(settings).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a torn or garbled file: treat as no server, it is rewritten on start
    if not isinstance(state, dict) or not isinstance(state.get("admin_url"), str):
        return None
    needs = {"embedded": "data", "docker": "container", "url": "admin_url"}.get(state.get("backend"))
    return state if needs is not None and isinstance(state.get(needs), str) else None


def write_state(settings: Settings, state: dict) -> None:
    tmp = state_file(settings).with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2)
    os.replace(tmp, state_file(settings))  # atomic: readers see the old or the new, never half


def _alive(state: dict) -> bool:
    backend = state.get("backend")
    if backend == "embedded":
        return embedded.alive(state)
    if backend == "docker":
        return docker.alive(state)
    # url: not ours to start or stop; connecting tells the truth.
    return backend == "url"


def choose_backend(settings: Settings) -> str:
    if settings.backend != "auto":
        return settings.backend
    if settings.url:
        return "url"
    return "docker" if docker.engine_problem() is None else "embedded"


def describe_url(url: str) -> str:
    """A DSN with the password hidden, safe to print."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


async def _check_url(url: str) -> None:
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


def _start(settings: Settings, backend: str) -> dict:
    if backend == "embedded":
        return embedded.start(settings)
    if backend == "docker":
        return docker.start(settings)
    assert settings.url is not None
    run_sync(_check_url(settings.url))
    return {"backend": "url", "admin_url": settings.url}


def ensure(settings: Settings | None = None) -> dict:
    """Return the running shared server's state, starting it first if needed."""
    settings = settings or Settings.from_env()
    with _Locked(settings):
        state = read_state(settings)
        if state is not None and _alive(state):
            wanted = settings.backend if settings.backend != "auto" else ("url" if settings.url else None)
            same_url = state["backend"] != "url" or state["admin_url"] == settings.url
            if (wanted is None or wanted == state["backend"]) and same_url:
                return state
            if state["backend"] != "url":
                article = "An" if state["backend"][0] in "aeiou" else "A"
                raise CourseDBError(
                    f"{article} {state['backend']} server is already running for this user; "
                    f"run 'python -m coursedb stop' before switching to {wanted}."
                )
        backend = choose_backend(settings)
        adopted = backend == "embedded" and embedded.postmaster_pid(embedded.paths(settings.home)["data"]) is not None
        state = _start(settings, backend)
        state["home"] = str(settings.home)
        try:
            try:
                run_sync(databases.ensure_template(state["admin_url"]))
                run_sync(databases.drop_stale(state["admin_url"]))
            except databases.DB_ERRORS as exc:
                raise CourseDBError(
                    f"The {backend} server started but setting up the course schema failed: {exc}"
                ) from None
            write_state(settings, state)
        except BaseException:
            # Ctrl-C or a failure before the state file was written: a server nobody recorded
            # is half-started. Stop what this call started (never a server it merely adopted).
            if not adopted:
                _discard(settings, backend)
            raise
        return state


def _discard(settings: Settings, backend: str) -> None:
    try:
        if backend == "embedded":
            embedded.kill(settings)
        elif backend == "docker":
            docker.stop(settings)
    except Exception:
        pass  # the next start finds and ends leftovers of this home


def drop_stale(state: dict) -> list[str]:
    """Drop the databases of owners that are gone; return their names."""
    try:
        return run_sync(databases.drop_stale(state["admin_url"]))
    except databases.DB_ERRORS as exc:
        raise CourseDBError(f"Dropping the databases of ended processes failed: {exc}") from None


def stop(settings: Settings | None = None) -> list[str]:
    """Stop the server and remove what coursedb made; return what was done, for printing."""
    settings = settings or Settings.from_env()
    if not settings.home.exists():
        return ["nothing to stop"]
    done = []
    with _Locked(settings):
        state = read_state(settings)
        if state is not None and state.get("backend") == "url":
            try:
                # A server named in COURSEDB_URL may serve a whole room: drop this user's
                # databases and dead owners' ones, never a database another live owner uses.
                entries = [
                    d for d in run_sync(databases.list_owned(state["admin_url"])) if d["name"] != databases.TEMPLATE
                ]
                names = [d["name"] for d in entries if not d["alive"] or databases.owned_here(d["owner"])]
                in_use = [d["name"] for d in entries if d["name"] not in names]
                if not in_use:
                    names.append(databases.TEMPLATE)  # last: nobody clones from it any more
                dropped, refused = [], []
                for name in names:
                    try:
                        run_sync(databases.drop(state["admin_url"], name))
                        dropped.append(name)
                    except asyncpg.InsufficientPrivilegeError:
                        refused.append(name)  # another role's database on a shared server
                done.append(f"dropped {len(dropped)} coursedb database(s) on {describe_url(state['admin_url'])}")
                if refused:
                    done.append(f"left {len(refused)} owned by other users: {', '.join(refused)}")
                if in_use:
                    done.append(f"left {len(in_use)} in use by other users or machines: {', '.join(in_use)}")
            except databases.DB_ERRORS as exc:
                done.append(f"could not drop coursedb databases on {describe_url(state['admin_url'])}: {exc}")
        if docker.engine_problem() is None:
            docker.stop(settings)
            done.append("removed coursedb containers")
        embedded.stop(settings)
        state_file(settings).unlink(missing_ok=True)
        done.append("stopped the server and removed its files")
    for leftover in ("lock", "state.tmp"):
        (settings.home / leftover).unlink(missing_ok=True)
    try:
        settings.home.rmdir()
    except OSError:
        pass
    return done


def status(settings: Settings | None = None) -> dict:
    """What is running, without starting anything."""
    settings = settings or Settings.from_env()
    state = read_state(settings) if settings.home.exists() else None
    if state is None or not _alive(state):
        return {"running": False, "home": str(settings.home)}
    info = dict(state, running=True)
    try:
        info["version"] = run_sync(_server_version(state["admin_url"]))
        info["databases"] = run_sync(databases.list_owned(state["admin_url"]))
    except databases.DB_ERRORS as exc:
        info["error"] = str(exc)
    return info


async def _server_version(admin_url: str) -> str:
    conn = await databases.connect_admin(admin_url)
    try:
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
