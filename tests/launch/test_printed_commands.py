"""Every command the README, the guides, the notebooks and coursedb's messages print works as printed,
typed into a plain shell whose ``python`` is not the course's (no asyncpg, no venv activated).

``python -m coursedb ...`` runs itself again with the course's ``.venv`` (coursedb/platform.py);
``python3 course.py ...`` needs nothing but the standard library by design.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coursedb.paths import course_root
from tests.helpers import cleanup, make_home

ROOT = course_root()
WHERE = ["README.md", "docs/*.md", "notebooks/src/*.py", "coursedb/**/*.py", "course.py"]
COMMAND = re.compile(
    r"(?<![\w/.\\])((?:\.venv[/\\]\S+ |python3? |py )(?:-m coursedb|course\.py)(?: (?:[a-z][\w-]*|\d+|--[\w-]+))*)"
)


def printed_commands() -> dict[str, list[str]]:
    """Command -> the files that print it."""
    found: dict[str, list[str]] = {}
    for pattern in WHERE:
        for path in sorted(ROOT.glob(pattern)):
            for command in COMMAND.findall(path.read_text(encoding="utf-8")):
                found.setdefault(command.strip(), []).append(str(path.relative_to(ROOT)))
    return found


def plain_python() -> str:
    """The interpreter the course's venv was made from: a Python as a plain shell finds it."""
    base = getattr(sys, "_base_executable", None) or shutil.which("python3")
    if base is None or Path(base).resolve() == Path(sys.executable).resolve():
        pytest.skip("no Python outside the course's venv to run the commands with")
    if subprocess.run([base, "-c", "import asyncpg"], capture_output=True, env=plain_env()).returncode == 0:
        pytest.skip(f"{base} has asyncpg installed: it cannot stand for a plain shell's python")
    return base


def plain_env(**extra: str) -> dict[str, str]:
    keep = ("HOME", "USERPROFILE", "SYSTEMROOT", "TEMP", "TMP", "LANG", "USER", "USERNAME", "LOGNAME")
    env = {k: v for k, v in os.environ.items() if k in keep}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(extra)
    return env


def test_the_commands_are_found():
    commands = printed_commands()
    assert "python -m coursedb status" in commands and "python3 course.py lab" in commands, sorted(commands)


def test_no_printed_command_names_an_interpreter_path():
    """.venv/bin/python is wrong on Windows (.venv\\Scripts\\python.exe) and from any other folder."""
    wrong = {c: where for c, where in printed_commands().items() if c.startswith(".venv")}
    assert wrong == {}, wrong


@pytest.mark.timeout(240)
def test_every_printed_coursedb_command_runs_from_a_plain_shell():
    python = plain_python()
    printed = {c.split()[3] for c in printed_commands() if " -m coursedb " in c and len(c.split()) > 3}
    assert printed <= {"start", "status", "stop", "room"}, printed
    home = make_home()
    env = plain_env(COURSEDB_HOME=str(home), COURSEDB_BACKEND="embedded")
    try:
        for args, expect in [
            (["start"], "coursedb server running (embedded)"),
            (["status"], "backend:   embedded"),
            (["room", "30"], "30 learners"),
            (["stop"], "stopped the server"),
            (["status"], "No coursedb server is running"),
        ]:
            result = subprocess.run(
                [python, "-m", "coursedb", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
            )
            said = result.stdout + result.stderr
            assert result.returncode == 0 and "Traceback" not in said, (args, said)
            assert expect in said, (args, said)
    finally:
        cleanup(home)


def test_without_the_course_packages_it_says_what_to_do(tmp_path):
    """A checkout whose venv was never made: one sentence, no ModuleNotFoundError traceback."""
    python = plain_python()
    shutil.copytree(ROOT / "coursedb", tmp_path / "coursedb")
    (tmp_path / "course.py").write_text("")
    result = subprocess.run(
        [python, "-m", "coursedb", "status"], cwd=tmp_path, env=plain_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "lacks the course's packages" in line and "python3 course.py setup" in line, line


@pytest.mark.timeout(240)
def test_printed_course_py_commands_run_with_a_plain_python(tmp_path):
    """course.py is standard library only; the quick printed ones run for real here."""
    python = plain_python()
    printed = {c.split()[2] for c in printed_commands() if " course.py " in c and len(c.split()) > 2}
    assert printed <= {"lab", "test", "setup", "learners", "build", "check", "progress"}, printed
    env = plain_env(COURSEDB_PROGRESS=str(tmp_path / "progress"))  # an empty record: not the tester's own
    for args in (["setup"], ["learners", "--out", str(tmp_path / "copies"), "00"], ["progress"]):
        result = subprocess.run(
            [python, "course.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=200
        )
        assert result.returncode == 0 and "Traceback" not in result.stderr, (args, result.stdout, result.stderr)
    assert (tmp_path / "copies" / "notebooks" / "00_start_here.ipynb").exists()
    assert "Next: exercise 0.1 in 00_start_here.ipynb." in result.stdout, result.stdout
