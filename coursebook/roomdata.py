"""A room's worth of checker outcomes, made up but shaped like the real thing: for the room view's tests,
its benchmark and the instructor guide's picture.

The exercises and their checks are the course's own (the test functions of each checker cell); who
ran what, how often and with which verdict is drawn from a seeded random generator, so the same seed
gives the same room. Rows are written straight into the outcomes table by a role that bypasses
row-level security (the server's superuser), so one connection writes rows for many learners.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import asyncpg

from coursebook.model import iter_notebooks
from coursedb import progress

NAMES = [
    "ada", "alan", "barbara", "brian", "claude", "donald", "edsger", "frances", "grace", "guido", "hedy", "ivan",
    "john", "ken", "leslie", "linus", "margaret", "niklaus", "radia", "shafi", "sophie", "tim", "tony", "yukihiro",
]  # fmt: skip
TEST_NAME = re.compile(r"^(?:async )?def (test_\w+)", flags=re.MULTILINE)


@dataclass(frozen=True)
class Row:
    learner: str
    exercise: str
    passed: bool
    failed: tuple[progress.Failed, ...]
    minutes_ago: float


def course_checks() -> dict[str, list[str]]:
    """Exercise id -> the check ids of its checker cell, in order."""
    found = {}
    for notebook in iter_notebooks():
        for ex_id, exercise in notebook.exercises.items():
            found[ex_id] = TEST_NAME.findall(notebook.cells[exercise.checker].source)
    return found


def learner_names(count: int) -> list[str]:
    return [NAMES[i] if i < len(NAMES) else f"learner{i + 1:03d}" for i in range(count)]


def made_up_room(learners: int, checks: dict[str, list[str]], seed: int = 7) -> list[Row]:
    """Each learner works through the exercises in order: some fast, some stuck, some gone quiet."""
    rng = random.Random(seed)
    exercises = sorted(checks, key=progress.exercise_key)
    rows = []
    for name in learner_names(learners):
        reach = rng.randint(1, len(exercises))  # how far this learner got
        minutes = rng.uniform(0, 25)  # minutes since the last run, counting backwards
        for ex in reversed(exercises[:reach]):
            tries = rng.choice([1, 1, 2, 2, 3, 4, 5])
            solved = ex != exercises[reach - 1] or rng.random() < 0.5
            # Most learners trip on the same check of an exercise: the first one, mostly.
            weights = [4, 2, *[1] * len(checks[ex])][: len(checks[ex])] or [1]
            for attempt in reversed(range(tries)):
                passed = solved and attempt == tries - 1
                failed: tuple[progress.Failed, ...] = ()
                if not passed and checks[ex]:
                    check = rng.choices(checks[ex], weights)[0]
                    failed = (progress.Failed(check, f"got {rng.randint(0, 99)}, expected something else"),)
                rows.append(Row(name, ex, passed, failed, minutes))
                minutes += rng.uniform(0.3, 4)
    rows.sort(key=lambda r: -r.minutes_ago)  # oldest first, as the table's ids grow
    return rows


async def write(conn: asyncpg.Connection, rows: Sequence[Row]) -> None:
    """Insert ``rows`` (the role must bypass row-level security: rows name other learners)."""
    await conn.execute(
        f"""INSERT INTO {progress.TABLE} (learner, exercise, passed, failed, at)
        SELECT l, e, p, f::jsonb, now() - make_interval(secs => m * 60)
        FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::float8[]) AS t(l, e, p, f, m)""",
        [r.learner for r in rows],
        [r.exercise for r in rows],
        [r.passed for r in rows],
        [json.dumps([[f.check, f.said] for f in r.failed]) for r in rows],
        [r.minutes_ago for r in rows],
    )


@contextlib.contextmanager
def room_view(url: str, env: dict[str, str], refresh_s: float = 5.0) -> Iterator[str]:
    """``python -m coursedb room view`` in a process of its own (uvicorn, as an instructor runs it) on a free
    port; yields the link with the token it printed, and stops it afterwards."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "coursedb", "room", "view", "--url", url, "--port", str(port),
         "--refresh", str(refresh_s)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        link = None
        for _ in range(3):
            found = re.search(r"(http://\S+\?token=\S+)", proc.stdout.readline())
            if found:
                link = found.group(1)
                break
        if link is None:
            proc.kill()
            raise RuntimeError(f"the room view did not start: {proc.communicate(timeout=10)[1].strip()[-800:]}")
        yield link
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
