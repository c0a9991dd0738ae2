"""One shared server per machine and user, found through a state file and a lock.

Which server it is (url, docker, embedded) is the backend's business: this module only
records it, checks it still runs, and sets up the course template on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import filelock

from . import backends, databases, platform, room
from ._aio import run_sync
from .backends import ServerState
from .errors import CourseDBError, reason
from .settings import Settings, secure_dir

# Long enough for a first Docker image pull by the holder; shorter than pytest-timeout (120 s)
# so a waiting test gets this sentence instead of a timeout traceback.
LOCK_TIMEOUT = 100


@dataclass
class Status:
    """What ``coursedb status`` shows; ``state`` is None when no server runs."""

    home: str
    state: ServerState | None = None
    version: str | None = None
    databases: list[databases.OwnedDatabase] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    connections: dict | None = None  # coursedb.room.headroom(): max_connections, used, headroom
    grace: float = 0.0  # what sweeps from this home wait before dropping an unlocked database

    @property
    def running(self) -> bool:
        return self.state is not None


def state_file(settings: Settings) -> Path:
    return settings.home / "state.json"


class _Locked:
    """Serialize starts and stops across processes; released even if the holder is killed."""

    def __init__(self, settings: Settings) -> None:
        self.home = settings.home
        try:
            # As root the server user must traverse home to reach data and binaries; nothing more.
            secure_dir(settings.home, 0o711 if platform.is_root() else 0o700)
        except OSError as exc:
            raise CourseDBError(unwritable_home(settings.home, exc)) from None
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
        except OSError as exc:
            raise CourseDBError(unwritable_home(self.home, exc)) from None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def unwritable_home(home: Path, exc: OSError) -> str:
    """COURSEDB_HOME (or a folder above it) on a read-only disk, or not ours to write."""
    why = exc.strerror or type(exc).__name__
    return (
        f"coursedb cannot write to COURSEDB_HOME={home} ({why}: {exc.filename or home}); "
        "set COURSEDB_HOME to a folder you may write to, or unset it to use one in the system's temporary folder."
    )


def read_state(settings: Settings) -> ServerState | None:
    path = state_file(settings)
    try:
        text = path.read_text()
    except OSError:
        return None  # no file, or one we cannot read: treat as no server, it is rewritten on start
    return backends.read(text, source=str(path))


def write_state(settings: Settings, state: ServerState) -> None:
    tmp = state_file(settings).with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(state.to_json())
    os.replace(tmp, state_file(settings))  # atomic: readers see the old or the new, never half


def follow(settings: Settings, first: ServerState) -> Callable[[], str | None]:
    """The admin URL of the server ``first`` names, as the state file has it now (None: none runs).

    For an owner's session coming back: an embedded server that restarted may listen on another
    port with another password, and the old port may belong to someone else by then.
    """

    def current() -> str | None:
        if not backends.runs_server(first):
            return first.admin_url  # not ours to start or stop: it is where it is
        try:
            state = read_state(settings)
        except CourseDBError:
            return None  # another coursedb's server now: not the one ``first`` names
        return state.admin_url if state is not None and state.backend == first.backend else None

    return current


def _alive(state: ServerState) -> bool:
    return backends.get(state.backend).alive(state)


def choose_backend(settings: Settings) -> str:
    """The name of the backend ``settings`` lead to (url, docker or embedded)."""
    return backends.choose(settings).NAME


def ensure(settings: Settings | None = None) -> ServerState:
    """Return the running shared server's state, starting it first if needed."""
    settings = settings or Settings.from_env()
    backends.preflight(settings)  # before anything is created, the home included
    with _Locked(settings):
        state = read_state(settings)
        if state is not None and _alive(state):
            if backends.serves(settings, state):
                return state
            if backends.runs_server(state):
                article = "An" if state.backend[0] in "aeiou" else "A"
                raise CourseDBError(
                    f"{article} {state.backend} server is already running for this user; "
                    f"run 'python -m coursedb stop' before switching to {settings.backend.replace('auto', 'url')}."
                )
        backend, state = backends.start(settings)
        try:
            try:
                run_sync(_prepare(state.admin_url))
            except databases.DB_ERRORS as exc:
                raise CourseDBError(
                    f"The {backend.NAME} server started but setting up the course schema failed: {exc}"
                ) from None
            write_state(settings, state)
        except BaseException:
            # Ctrl-C or a failure before the state file was written: a server nobody recorded
            # is half-started. Stop what this call started (never a server it merely adopted).
            if not state.adopted:
                try:
                    backend.stop(settings, state, keep_files=True)
                except Exception:
                    pass  # the next start finds and ends leftovers of this home
            raise
        return state


async def _prepare(admin_url: str) -> None:
    async with databases.admin_connection(admin_url) as conn:
        await databases.ensure_template(conn, admin_url)


def sweep(state: ServerState, grace: float) -> databases.Sweep:
    """Drop the databases whose lock has been free for ``grace`` seconds; say what was left and why."""

    async def run() -> databases.Sweep:
        async with databases.admin_connection(state.admin_url) as conn:
            return await databases.drop_stale(conn, grace)

    try:
        return run_sync(run())
    except databases.DB_ERRORS as exc:
        raise CourseDBError(f"Dropping the databases of ended processes failed: {reason(exc)}") from None


def mismatch(settings: Settings, state: ServerState) -> str | None:
    """A setting the running server does not follow (it was set after the server started)."""
    return backends.mismatch(settings, state)


def stop(settings: Settings | None = None, force: bool = False) -> list[str]:
    """Stop the server and remove what coursedb made; return what was done, for printing.

    Not while other processes (kernels, test runs) hold databases on a server coursedb runs: their
    rows would go with it. ``force`` stops it anyway, and says whose databases went.
    """
    settings = settings or Settings.from_env()
    unrecorded = backends.unrecorded(settings)
    if not settings.home.exists() and unrecorded is None:
        return ["nothing to stop"]
    done = []
    with _Locked(settings):
        state = read_state(settings) or unrecorded
        users = live_owners(state) if state is not None and backends.runs_server(state) else []
        if users and not force:
            raise CourseDBError(
                f"{len(users)} notebook kernel(s) or test run(s) still use the {state.backend} server "
                f"({'; '.join(users)}), and stopping it would take their databases and rows with it; "
                "close them first, or run 'python -m coursedb stop --force'."
            )
        # Every backend, not only the recorded one: leftovers of an earlier backend go too.
        failed = []
        for backend in backends.ALL.values():
            try:
                done += backend.stop(settings, state)
            except CourseDBError as exc:
                failed.append(exc)  # said once the others have cleaned up; the state file stays
        if failed:
            raise failed[0]
        if users:
            done.append(f"the databases of {len(users)} live owner(s) went with it: {'; '.join(users)}")
        state_file(settings).unlink(missing_ok=True)
        if not done:
            done.append(f"no server was running; removed coursedb's files in {settings.home}")
    for leftover in ("lock", "state.tmp"):
        (settings.home / leftover).unlink(missing_ok=True)
    try:
        settings.home.rmdir()
    except OSError:
        pass  # files coursedb did not make stay, and so does their folder
    return done


def live_owners(state: ServerState) -> list[str]:
    """Who holds a database on the server now (its session holds the lock), for people; [] if it does not answer."""

    async def ask() -> list[databases.OwnedDatabase]:
        async with databases.admin_connection(state.admin_url) as conn:
            return await databases.list_owned(conn)

    try:
        listed = run_sync(ask())
    except databases.DB_ERRORS:
        return []  # frozen or gone: stopping it is the remedy, and nobody can be using it
    users = []
    for db in listed:
        if db.kind == "owner" and db.locked:
            owner = db.owner or {}
            who = f"{owner.get('kind', 'owner')} pid {owner.get('pid', '?')}"
            users.append(who + (f" on {owner['host']}" if owner.get("host") else "") + f", {db.name}")
    return users


def status(settings: Settings | None = None) -> Status:
    """What is running, without starting anything."""
    settings = settings or Settings.from_env()
    state = read_state(settings) if settings.home.exists() else None
    if state is None or not _alive(state):
        return Status(home=str(settings.home))
    info = Status(home=str(settings.home), state=state, grace=settings.sweep_grace)
    note = mismatch(settings, state)
    if note:
        info.notes.append(note)

    async def look() -> None:
        async with databases.admin_connection(state.admin_url) as conn:
            info.version = await conn.fetchval("SHOW server_version")
            info.databases = await databases.list_owned(conn)
            info.connections = await room.headroom(conn)

    try:
        run_sync(look())
    except databases.DB_ERRORS as exc:
        info.error = reason(exc)
    return info
