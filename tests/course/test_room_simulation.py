"""A room, simulated: ten learners on one stock PostgreSQL 15, each as its own role (``room add``), open
notebooks 00, 03 and 04 (a kernel per notebook, as JupyterLab gives them) and answer their exercises with
answers from the catalogues (notebooks/answers/): wrong ones, right ones, the model answer, or nothing.
The instructor's view, read as the instructor's role, counts exactly what the kernels did: the grid (every
learner × exercise: runs, failed runs, passed / trying / not started, the CSV's rows), per exercise who is
stuck and the checks failed by the latest run of those not passed (by check id), and who ran no checker.

What the kernels did is read from the cells' own pytest reports (a red cell, and pytest's ``FAILED
...::test_name`` / ``ERROR ...::test_name`` lines), not from coursedb.progress: the view is checked against
the kernels, not against itself. Every exercise of these three notebooks checks itself after the setup
cell alone, so a kernel runs the setup, then answer and checker cells (the heavier room run with whole
notebooks is benchmarks/room.py).
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import asyncpg
import pytest

pytest.importorskip("pwd", reason="a Debian PostgreSQL run as its own user: Linux only")

from coursebook import answers
from coursebook.model import Notebook, iter_notebooks
from coursebook.roomdata import learner_names
from coursebook.system_postgres import available, system_postgres
from coursedb import names, progress, roomview
from coursedb import room as room_module
from tests.helpers import cleanup, cli, env_for, make_home, run
from tests.helpers.kernel import SETUP, Kernel

pytestmark = [pytest.mark.skipif(available() is not None, reason=str(available())), pytest.mark.timeout(1200)]
LEARNERS = 10
Run = tuple[str, bool, frozenset[str]]  # exercise, passed, the checks that failed
REPORTED = re.compile(r"^(?:FAILED|ERROR) \S+::(test_\w+)", flags=re.MULTILINE)
PLAIN = "%%ipytest\ndef test_a_demo_of_my_own():\n    assert 1 + 1 == 3\n"  # a red cell that checks no exercise

# Per kind of learner: the notebooks opened, in order, each with the cells run after its setup:
# (exercise, 'wrong:i' | 'right:i' | 'model') is an answer then that exercise's checker; 'plain' is PLAIN.
KINDS: list[list[tuple[str, list]]] = [
    [("00", [("0.1", "wrong:0"), ("0.1", "wrong:1"), ("0.1", "right:0"), ("0.2", "model")])],  # tries, passes
    [("03", [("3.2", "wrong:2"), ("3.2", "wrong:2"), "plain", ("3.2", "wrong:3"), ("3.1", "wrong:0")])],  # stuck
    [("00", [("0.1", "model"), ("0.2", "right:1")]), ("04", [("4.1", "model"), ("4.2", "right:1")])],  # at once
    # passed, then a failed run; stuck on 4.2
    [("04", [("4.1", "wrong:1"), ("4.1", "right:1"), ("4.1", "wrong:0"), *[("4.2", f"wrong:{i}") for i in (2, 3, 4)]])],
    [("03", ["plain"])],  # opened a notebook, ran a test of their own, no checker
]


def shifted(step, shift: int):
    """The same step with the catalogue entry ``shift`` further on."""
    if step == "plain" or step[1] == "model":
        return step
    kind, index = step[1].split(":")
    return (step[0], f"{kind}:{int(index) + shift}")


def plans() -> dict[str, list[tuple[str, list]]]:
    """Per learner, the kind of ``i % 5``; the second five pick other catalogue entries (shifted by one)."""
    made = {}
    for i, name in enumerate(learner_names(LEARNERS)):
        shift = i // len(KINDS)
        made[name] = [(book, [shifted(step, shift) for step in steps]) for book, steps in KINDS[i % len(KINDS)]]
    return made


def notebook(prefix: str) -> Notebook:
    (found,) = iter_notebooks([prefix])
    return found


def source_of(book: Notebook, exercise: str, choice: str) -> str:
    ex = book.exercises[exercise]
    stub = book.cells[ex.stub].source
    if choice == "model":
        return book.cells[ex.solution].source
    kind, index = choice.split(":")
    catalogue = answers.for_notebook(book)
    entries = (catalogue.wrong if kind == "wrong" else catalogue.right)(exercise)
    entry = entries[int(index) % len(entries)]
    return answers.with_imports_of(stub, entry.cell_source(answers.function_name(stub)))


Cells = list[tuple[str, list[tuple[str | None, str]]]]  # per kernel: (notebook, [(exercise or None, cell)])


def cells_of(plan: list[tuple[str, list]]) -> Cells:
    """The cells each of a learner's kernels runs after its setup: an answer then its checker, or PLAIN."""
    made = []
    for prefix, steps in plan:
        book, cells = notebook(prefix), []
        for step in steps:
            if step == "plain":
                cells.append((None, PLAIN))
                continue
            exercise, choice = step
            cells.append((None, source_of(book, exercise, choice)))
            cells.append((exercise, book.cells[book.exercises[exercise].checker].source))
        made.append((prefix, cells))
    return made


def learner_kernels(name: str, url: str, kernels: Cells) -> tuple[list[int], list[Run]]:
    """One learner: a kernel per notebook opened, its setup cell, then its cells. The kernels' pids, and what
    each checker run did."""
    pids, done = [], []
    for _prefix, cells in kernels:
        home = make_home()
        env = env_for(home, COURSEDB_BACKEND="url", COURSEDB_URL=url, COURSEDB_PROGRESS=None)
        try:
            with Kernel(env=env) as kernel:
                pids.append(kernel.manager.provisioner.pid)
                assert kernel.run(SETUP).status == "ok", name
                for exercise, cell in cells:
                    ran = kernel.run(cell, timeout=180)
                    if exercise is None:  # an answer runs, a learner's own red test fails
                        assert ran.status == ("error" if cell == PLAIN else "ok"), (name, cell, ran.error_text)
                        continue
                    failed = frozenset(REPORTED.findall(ran.stdout))
                    passed = ran.status == "ok"
                    assert passed == (not failed), (name, exercise, ran.stdout[-1500:])
                    done.append((exercise, passed, failed))
                flushed = kernel.run("from coursedb import progress\nprint(progress.flush(20))")
                assert flushed.stdout.strip() == "True", (name, flushed.stdout, flushed.stderr)
        finally:
            cleanup(home)
    return pids, done


def test_the_room_view_counts_exactly_what_ten_learners_kernels_did(tmp_path):
    with system_postgres() as pg:
        credentials = tmp_path / "credentials.json"
        home = make_home()
        try:
            made = cli(home, "room", "add", *learner_names(LEARNERS), "--credentials", str(credentials),
                       COURSEDB_BACKEND="url", COURSEDB_URL=pg.superuser_url, timeout=120)  # fmt: skip
        finally:
            cleanup(home)
        assert made.returncode == 0, made.stderr
        stored = json.loads(credentials.read_text())
        plan = plans()
        cells = {name: cells_of(steps) for name, steps in plan.items()}
        # A process per learner, not a thread: with ten learners' threads in this process, Python 3.11.7
        # was left unable to parse (SystemError "AST constructor recursion depth mismatch" at the next
        # import pytest rewrote: its AST constructor keeps the recursion depth in global state).
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=LEARNERS, mp_context=spawn) as pool:
            futures = {n: pool.submit(learner_kernels, n, stored["learners"][n]["url"], cells[n]) for n in plan}
            ran = {name: future.result() for name, future in futures.items()}
        did = {name: runs for name, (_pids, runs) in ran.items()}
        whose = {pid: name for name, (pids, _runs) in ran.items() for pid in pids}
        log = pg.log.read_text(errors="replace")

        async def look() -> roomview.Room:
            conn = await asyncpg.connect(stored["instructor"]["url"])
            try:
                return await roomview.gather(conn, progress.course_exercises())
            finally:
                await conn.close()

        room = run(look())

    assert len(whose) > LEARNERS, "more than ten learner kernels"
    assert sum(len(runs) for runs in did.values()) >= 3 * LEARNERS, "the simulation ran too few checkers"
    shown = {learner.name: learner for learner in room.learners}
    assert sorted(shown) == sorted(plan), "every learner room add made is in the view, by name"

    # The grid: every learner × every exercise of the course, and the CSV's row for it.
    rows = {(r["learner"], r["exercise"]): r for r in csv.DictReader(io.StringIO(roomview.render_csv(room)))}
    course = [ex for book in room.books for ex in book.exercises]
    assert len(rows) == LEARNERS * len(course) and len(course) >= 22
    expected_failing: dict[str, Counter[str]] = {}
    stuck: dict[str, list[str]] = {}
    for name, runs in did.items():
        for exercise in course:
            mine = [(passed, failed) for ex, passed, failed in runs if ex == exercise]
            passed, failed_runs = any(p for p, _ in mine), sum(not p for p, _ in mine)
            status = "passed" if passed else "trying" if mine else "not started"
            is_stuck = not passed and failed_runs >= progress.STUCK_AFTER
            failing = mine[-1][1] if mine and not passed else frozenset()
            s, row = room.standing(shown[name], exercise), rows[name, exercise]
            assert (s.runs, s.failed_runs, s.status, s.stuck) == (len(mine), failed_runs, status, is_stuck), (
                name, exercise, mine, s)  # fmt: skip
            assert (row["checker_runs"], row["failed_runs"], row["status"], row["stuck"]) == (
                str(len(mine)), str(failed_runs), status, str(int(is_stuck))), (name, exercise, row)  # fmt: skip
            assert set(filter(None, row["failing_checks"].split(";"))) == failing, (name, exercise, row)
            if failing:
                expected_failing.setdefault(exercise, Counter()).update(failing)
            if is_stuck:
                stuck.setdefault(exercise, []).append(name)

    # Per exercise: who is stuck, and the most failed checks (latest run of those not passed), by check id.
    summaries = {s.exercise: s for s in room.exercises}
    for exercise in course:
        mine = [(n, r) for n, runs in did.items() for r in runs if r[0] == exercise]
        summary = summaries[exercise]
        assert summary.passed == len({n for n, r in mine if r[1]}), exercise
        assert summary.trying == len({n for n, _ in mine}) - summary.passed, exercise
        assert sorted(summary.stuck) == sorted(stuck.get(exercise, [])), exercise
        counts, listed = expected_failing.get(exercise, Counter()), summary.failing
        assert {f.check: f.learners for f in listed} == {f.check: counts[f.check] for f in listed}, exercise
        assert len(listed) == min(roomview.TOP_CHECKS, len(counts)), exercise
        left_out = [n for check, n in counts.items() if check not in {f.check for f in listed}]
        assert not left_out or min(f.learners for f in listed) >= max(left_out), exercise  # the most failed
    assert len({n for names_ in stuck.values() for n in names_}) >= 4, "the plans make learners stuck"
    assert set(expected_failing) == {"3.1", "3.2", "4.2"}, "what the plans leave failing (4.1 passed once)"

    # Idle: exactly those whose kernels ran no checker (the others ran one seconds ago).
    assert sorted(x.name for x in room.idle) == sorted(n for n, runs in did.items() if not runs)
    assert all(shown[n].ran_checker == bool(runs) for n, runs in did.items())

    # Recording rode on each kernel's own session: every learner within the room's budget, counted from the
    # server's log of every connection (the kernel's session, its database's connections, nothing else).
    peaks = room_module.connection_peaks(log, lambda db, app: whose.get(names.session_pid(db, app)))
    assert peaks.refused == 0
    assert sorted(peaks.groups) == sorted(plan), peaks.groups
    assert max(peaks.groups.values()) <= room_module.BUDGET, peaks.groups
    print(f"connections at most, per learner: {peaks.groups}; kernels: {len(whose)}; "
          f"checker runs: {sum(map(len, did.values()))}")  # fmt: skip
