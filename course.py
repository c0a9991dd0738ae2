#!/usr/bin/env python3
"""Set up and run the course with nothing but Python >= 3.10.

    python3 course.py lab       create .venv, start the database server, open JupyterLab
    python3 course.py lab --learner   the same on the learner copies (written to learner/ if missing)
    python3 course.py test      run every test: coursedb, the reference suite, all notebooks
    python3 course.py test --quick   the authors' loop: unit tests and strict nbval (test -h says what it skips)
    python3 course.py setup     only create .venv and install what a learner needs (--dev: the maintainers' tools too)
    python3 course.py learners  write learner copies (no outputs, no solutions) to learner/ (or --out DIR)
    python3 course.py build     re-execute notebooks from notebooks/src/ (for authors)
    python3 course.py check     the built notebooks match notebooks/src/ cell by cell (fast; the pre-commit hook)
    python3 course.py progress  which exercises pass, which you tried and how often, what to do next

Extra arguments go to the tool: ``python3 course.py test -k pools``, ``python3 course.py lab --no-browser``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
# Two requirement sets: what a learner (and Binder) installs, and what maintainers, instructors' tools and
# CI add; the commands that need the second install it on demand.
LEARNER_SET = "requirements.txt"
DEV_SET = "requirements-dev.txt"
DEV_COMMANDS = ("test", "build", "check")
FIRST_NOTEBOOK = "notebooks/00_start_here.ipynb"
# The committed notebook outputs were recorded on this Python. Tracebacks differ a little
# between Python versions, so elsewhere nbval checks that every cell runs, not its text.
REFERENCE_PYTHON = (3, 11)
# The test command's arguments are coursebook's (coursebook/commands.py: standard library only), loaded by
# path: this file runs on a bare Python, from any folder, and notebook 07 reads TEST_ARGS from it.
_spec = importlib.util.spec_from_file_location("coursebook_commands", ROOT / "coursebook" / "commands.py")
_commands = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_commands)
NBVAL_ARGS, TEST_ARGS, QUICK_ARGS = _commands.NBVAL_ARGS, _commands.TEST_ARGS, _commands.QUICK_ARGS


def say(message: str) -> None:
    print(f"course: {message}", flush=True)


def fail(message: str) -> None:
    print(f"course: {message}", file=sys.stderr)
    raise SystemExit(2)


def requirements_hash(*names: str) -> str:
    digest = hashlib.sha256()
    for name in (*names, "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_venv(dev: bool = False) -> None:
    """Create .venv and install the pinned requirements, once per change of requirements;
    with ``dev``, the maintainers' set too."""
    if sys.version_info < (3, 10):  # noqa: UP036 - this file is what older Pythons run first
        fail(f"Python 3.10 or newer is needed; this is {sys.version.split()[0]}.")
    if not PY.exists():
        say(f"creating a virtual environment in {VENV}")
        try:
            venv.create(VENV, with_pip=True)
        except Exception as exc:
            fail(f"could not create {VENV} ({exc}); on Debian/Ubuntu install python3-venv first.")
        # The pip bundled with an older Python may not know today's wheels and markers.
        subprocess.run([str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q", "--upgrade", "pip"])
    install(LEARNER_SET, VENV / ".installed", "installing the pinned requirements (first time takes a minute)")
    if dev:
        install(DEV_SET, VENV / ".installed-dev", f"installing the maintainers' tools ({DEV_SET}, once)")


def ensure_pinned(module: str) -> None:
    """One package of the dev set, for a learner's command that needs just that one (learner copies read the
    notebooks' sources with jupytext); a learner's .venv stays without the rest of the maintainers' tools."""
    if subprocess.run([str(PY), "-c", f"import {module}"], capture_output=True).returncode == 0:
        return
    pins = [ln.split("#")[0].strip() for ln in (ROOT / DEV_SET).read_text().splitlines()]
    pin = next(p for p in pins if p.split("==")[0].strip().lower() == module)
    say(f"installing {pin} from {DEV_SET} (learner copies are made from the notebooks' sources)")
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if subprocess.run([*pip, pin], cwd=ROOT).returncode != 0:
        fail(f"installing {pin} failed; the pip output above says why.")


def install(requirements: str, stamp: Path, message: str) -> None:
    wanted = requirements_hash(LEARNER_SET, requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    say(message)
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    result = subprocess.run([*pip, "-r", requirements], cwd=ROOT)
    if result.returncode != 0:
        fail(f"installing {requirements} failed; the pip output above says why.")
    stamp.write_text(wanted)


def run(args: list[str]) -> int:
    # The venv first on PATH: `python -m coursedb status` in a JupyterLab terminal uses it too.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(VENV)}
    return subprocess.run(args, cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in ("lab", "test", "build", "check", "setup", "learners", "progress"):
        fail(f"unknown command {command!r}; use lab, test, setup, learners, build, check or progress.")
    if command == "test" and ("-h" in rest or "--help" in rest):
        print(_commands.test_help())
        return 0
    dev = command in DEV_COMMANDS or (command == "setup" and "--dev" in rest)
    ensure_venv(dev)
    if command == "setup":
        say(f"ready: {VENV}" + (" (with the maintainers' tools)" if dev else ""))
        return 0
    if command == "test":
        quick = QUICK_ARGS if "--quick" in rest else []
        rest = [arg for arg in rest if arg != "--quick"]
        return run([str(PY), "-m", "pytest", *TEST_ARGS, *quick, *nbval_mode(), *rest])
    if command in ("build", "check", "learners"):
        if command == "learners":
            ensure_pinned("jupytext")
        return run([str(PY), "-m", "coursebook", command, *rest])
    if command == "progress":
        return run([str(PY), "-m", "coursedb.progress", *rest])
    return lab(rest)


def lab(rest: list[str]) -> int:
    """JupyterLab rooted where the notebooks' links work: the repository, or the learner copies."""
    root = ROOT
    if "--learner" in rest:
        rest = [arg for arg in rest if arg != "--learner"]
        root = ROOT / "learner"
        if not (root / FIRST_NOTEBOOK).exists():
            ensure_pinned("jupytext")
            if run([str(PY), "-m", "coursebook", "learners"]) != 0:
                return 2
    if run([str(PY), "-m", "coursedb", "start"]) != 0:
        return 2
    no_news_prompt()
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # containers
    where = [f"--ServerApp.root_dir={root}", str(root / FIRST_NOTEBOOK)]  # a file alone would root Lab at its folder
    return run([str(PY), "-m", "jupyter", "lab", *where, *as_root, *rest])


def no_news_prompt() -> None:
    """No "get notified about Jupyter news?" prompt, as on Binder (binder/postBuild does the same)."""
    path = VENV / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides = json.loads(path.read_text()) if path.exists() else {}
    notification = overrides.setdefault("@jupyterlab/apputils-extension:notification", {})
    if notification.get("fetchNews") != "false" or notification.get("checkForUpdates") is not False:
        notification.update(fetchNews="false", checkForUpdates=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(overrides, indent=2) + "\n")


def nbval_mode() -> list[str]:
    if os.name == "nt":
        say(
            "outputs were recorded on Linux; on Windows paths and some messages print differently, so nbval "
            "checks that every notebook cell runs, not the text it prints (--nbval-lax)"
        )
        return ["--nbval-lax"]
    version = subprocess.run(
        [str(PY), "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.split()
    if tuple(map(int, version)) == REFERENCE_PYTHON:
        return []
    say(
        f"outputs were recorded on Python {'.'.join(map(str, REFERENCE_PYTHON))}; on this Python nbval "
        "checks that every notebook cell runs, not the text it prints (--nbval-lax)"
    )
    return ["--nbval-lax"]


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
