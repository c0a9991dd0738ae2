"""A learner's progress: every checker run's outcome kept, where the learner (and in a room the instructor) sees it.

An owner process (a kernel in all but name: it took its database, so it has its keeper's session)
records outcomes through ``coursedb.progress`` and answers on stdout; the test looks at what ended up
in the file store or the server's table, and that no connection was opened for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import coursedb
from coursedb import progress
from tests.helpers import PYTHON, ROOT, cli, env_for, fetch, run, settings_for

RECORDER = """
import json, sys
import coursedb
from coursedb import progress

coursedb.database_url()
keeper = progress._my_keeper()
print("ready", keeper.conn.get_server_pid(), flush=True)
for line in sys.stdin:
    word, *rest = line.split()
    if word == "record":
        exercise, verdict, *checks = rest
        progress.record(exercise, verdict == "pass", [progress.Failed(c, f"{c} said no") for c in checks])
        print("ok", flush=True)
    elif word == "flush":
        print(json.dumps(progress.flush(5.0)), flush=True)
    elif word == "queued":
        print(len(progress._queue.items), flush=True)
    elif word == "mine":
        found, note = progress.my_outcomes()
        print(json.dumps([[o.learner, o.exercise, o.passed, [f.check for f in o.failed]] for o in found]), flush=True)
    elif word == "backend":
        print(keeper.conn.get_server_pid() if keeper.conn is not None and not keeper.conn.is_closed() else -1,
              flush=True)
"""


class Recorder:
    """An owner process on ``home`` that records when told to."""

    def __init__(self, home: Path, **env: str | None) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-c", RECORDER], env=env_for(home, COURSEDB_PROGRESS=None, **env), cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        first = self.proc.stdout.readline().split()
        if not first or first[0] != "ready":
            self.proc.kill()
            raise AssertionError(f"the recorder did not start: {self.proc.communicate(timeout=10)[1]}")
        self.keeper_backend = int(first[1])

    def ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer, f"the recorder died: {self.proc.stderr.read()}"
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def data_home(tmp_path):
    """A per-user data folder of the test's own (XDG_DATA_HOME): where a laptop's outcomes go."""
    return tmp_path / "data"


def outcome(exercise: str, passed: bool, *checks: str, learner: str = "me") -> progress.Outcome:
    return progress.Outcome(learner, exercise, passed, tuple(progress.Failed(c, f"{c} said no") for c in checks))


# --- the laptop's file store ------------------------------------------------------------------------


def test_the_file_store_keeps_outcomes_and_skips_a_line_cut_short(tmp_path):
    store = progress.FileStore(tmp_path / "progress")
    assert store.read() == []
    learner = store.learner
    assert learner.startswith("local-") and store.learner == learner  # made once, then the same
    store.add([outcome("3.2", False, "test_tie"), outcome("3.2", True)])
    with open(store.path, "a") as f:
        f.write('{"learner": "me", "exercise": "3.')  # a kernel killed mid-write
    store.add([outcome("4.1", False)])
    got = store.read()
    assert [(o.exercise, o.passed) for o in got] == [("3.2", False), ("3.2", True), ("4.1", False)]
    assert got[0].failed == (progress.Failed("test_tie", "test_tie said no"),)
    assert store.forget() and not store.path.exists() and store.read() == []


def test_a_laptop_records_outside_coursedb_home_and_stop_leaves_it(home, data_home):
    """No outcomes table on the server: the owner's outcomes go to the per-user data folder, which is not
    COURSEDB_HOME, so `stop` (which removes the home) keeps them; the learner's view still shows them."""
    recorder = Recorder(home, XDG_DATA_HOME=str(data_home))
    try:
        assert recorder.ask("record 3.2 fail test_rows_of_one_transaction_tie_on_created_at") == "ok"
        assert recorder.ask("record 3.2 pass") == "ok"
        assert recorder.ask("flush") == "true"
        assert [o[1:3] for o in json.loads(recorder.ask("mine"))] == [["3.2", False], ["3.2", True]]
    finally:
        recorder.close()
    store = progress.FileStore(data_home / "coursedb" / "progress")
    assert [(o.exercise, o.passed) for o in store.read()] == [("3.2", False), ("3.2", True)]
    assert not str(store.path).startswith(str(home))
    assert cli(home, "stop").returncode == 0
    assert not home.exists() or not any(home.iterdir())
    view = subprocess.run(
        [PYTHON, "-m", "coursedb.progress"], env=env_for(home, XDG_DATA_HOME=str(data_home), COURSEDB_PROGRESS=None),
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert view.returncode == 0, view.stderr
    assert "03 · Rollback isolation: 1 of 2 exercises pass" in view.stdout, view.stdout
    assert "3.2   passed" in view.stdout and "2 checker runs" in view.stdout
    assert "Next: exercise 0.1 in 00_start_here.ipynb." in view.stdout  # the first one not passed
    assert f"in {store.path}" in view.stdout


def test_the_notebook_runs_store_of_its_own_and_off(tmp_path, monkeypatch):
    """COURSEDB_PROGRESS=<folder> records there (the notebook run: committed outputs stay the same); off: nowhere."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv(progress.ENV, str(tmp_path / "run"))
    progress.record("1.1", False, [progress.Failed("test_a", "no")])
    assert [o.exercise for o in progress.FileStore(tmp_path / "run").read()] == ["1.1"]
    monkeypatch.setenv(progress.ENV, "off")
    progress.record("1.1", True)
    assert progress.my_outcomes() == ([], None)
    assert len(progress.FileStore(tmp_path / "run").read()) == 1
    assert not (tmp_path / "data").exists()


def test_recording_never_raises(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(progress.ENV, str(blocker))  # the store cannot be made there
    assert progress.record("2.1", True) is None
    monkeypatch.setenv(progress.ENV, str(tmp_path / "ok"))
    assert progress.record("not an exercise", True) is None
    assert progress.FileStore(tmp_path / "ok").read() == []


def test_the_learners_view_says_what_to_do_next():
    books = [
        progress.BookExercises("03_rollback_isolation", "Rollback isolation", ("3.1", "3.2")),
        progress.BookExercises("04_savepoints", "Savepoints", ("4.1",)),
    ]
    runs = [outcome("3.1", True), *(outcome("3.2", False, "test_tie") for _ in range(3))]
    lines = progress.describe(books, runs)
    assert lines == [
        "03 · Rollback isolation: 1 of 2 exercises pass",
        "  3.1   passed                   1 checker run",
        "  3.2   not yet (3 failed)       3 checker runs",
        "04 · Savepoints: 0 of 1 exercises pass, none tried yet",
        "Next: exercise 3.2 in 03_rollback_isolation.ipynb. Its checker failed 3 times: open the hints under it.",
    ]
    done = progress.describe(books, [outcome("3.1", True), outcome("3.2", True), outcome("4.1", True)], only="04")
    assert done == [
        "04 · Savepoints: 1 of 1 exercises pass",
        "  4.1   passed                   1 checker run",
        "Every exercise here passes (1 of 1).",
    ]


def test_course_exercises_are_read_from_the_notebooks():
    books = progress.course_exercises()
    assert [b.stem[:2] for b in books] == [f"{n:02d}" for n in range(len(books))]
    found = [ex for b in books for ex in b.exercises]
    assert len(found) == len(set(found)) >= 22
    assert all(ex.split(".")[0] == str(int(b.stem[:2])) for b in books for ex in b.exercises)


def test_check_ids_and_sentences_from_pytest_reports():
    class Crash:
        message = "AssertionError: newest_user returned 'a', expected 'c'\nassert 'a' == 'c'"

    class Repr:
        reprcrash = Crash()

    assert progress.check_id("cell.py::test_tie[3-rows]") == "test_tie"
    assert progress.sentence(Repr()) == "newest_user returned 'a', expected 'c'"
    assert progress.sentence("this test ran longer than 30 s and was stopped") == (
        "this test ran longer than 30 s and was stopped"
    )


# --- the room's store: the outcomes table, on the owner's own session ----------------------------------


def make_table(home: Path) -> str:
    admin_url = coursedb.status(settings_for(home)).state.admin_url

    async def create() -> str:
        import asyncpg

        conn = await asyncpg.connect(admin_url)
        try:
            return await progress.create_table(conn)
        finally:
            await conn.close()

    assert "created" in run(create())
    return admin_url


def sessions(admin_url: str) -> int:
    sql = "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'"
    return run(fetch(admin_url, sql))[0]["n"]


def test_a_room_server_gets_the_outcomes_on_the_owners_existing_session(home, data_home):
    assert cli(home, "start").returncode == 0
    admin_url = make_table(home)
    recorder = Recorder(home, XDG_DATA_HOME=str(data_home))
    try:
        before = sessions(admin_url)
        for verdict in ("fail", "fail", "pass"):
            assert recorder.ask(f"record 5.1 {verdict} test_money_keeps_its_cents") == "ok"
        assert recorder.ask("flush") == "true"
        assert sessions(admin_url) == before  # no connection was opened for it
        rows = run(fetch(admin_url, f"SELECT learner, exercise, passed, failed FROM {progress.TABLE} ORDER BY id"))
        assert [(r["learner"], r["exercise"], r["passed"]) for r in rows] == [
            ("postgres", "5.1", False), ("postgres", "5.1", False), ("postgres", "5.1", True),
        ]  # fmt: skip
        assert json.loads(rows[0]["failed"]) == [["test_money_keeps_its_cents", "test_money_keeps_its_cents said no"]]
        assert not data_home.exists(), "the room's outcomes went to the server, not to a file"
    finally:
        recorder.close()


def test_outcomes_wait_while_the_session_is_away_and_go_later(home, data_home):
    """The keeper's session is cut (a network blip): outcomes recorded meanwhile are kept, then sent."""
    assert cli(home, "start").returncode == 0
    admin_url = make_table(home)
    recorder = Recorder(home, XDG_DATA_HOME=str(data_home))
    try:
        run(fetch(admin_url, "SELECT pg_terminate_backend($1)", recorder.keeper_backend))
        assert recorder.ask("record 6.2 fail test_plan_uses_the_index") == "ok"
        assert recorder.ask("record 6.2 fail test_plan_uses_the_index") == "ok"
        deadline = time.monotonic() + 20
        while recorder.ask("flush") != "true":
            assert time.monotonic() < deadline, f"still queued: {recorder.ask('queued')}"
            time.sleep(0.3)
        assert int(recorder.ask("backend")) != recorder.keeper_backend  # the keeper's new session sent them
        rows = run(fetch(admin_url, f"SELECT exercise, passed FROM {progress.TABLE}"))
        assert [(r["exercise"], r["passed"]) for r in rows] == [("6.2", False), ("6.2", False)]
    finally:
        recorder.close()


def test_a_table_a_learner_could_own_is_not_trusted(home, data_home):
    """A table of that name owned by an ordinary role (one a learner could have made first on PostgreSQL 14)
    would hand everyone's outcomes to that role: the kernels write to their file instead."""
    assert cli(home, "start").returncode == 0
    admin_url = make_table(home)
    run(fetch(admin_url, "CREATE ROLE mallory LOGIN"))
    run(fetch(admin_url, f"ALTER TABLE {progress.TABLE} OWNER TO mallory"))
    recorder = Recorder(home, XDG_DATA_HOME=str(data_home))
    try:
        assert recorder.ask("record 7.1 pass") == "ok"
        assert recorder.ask("flush") == "true"
    finally:
        recorder.close()
    assert run(fetch(admin_url, f"SELECT count(*) AS n FROM {progress.TABLE}"))[0]["n"] == 0
    assert [o.exercise for o in progress.FileStore(data_home / "coursedb" / "progress").read()] == ["7.1"]


def test_progress_cli_forget(tmp_path):
    env = {**os.environ, progress.ENV: str(tmp_path / "p")}
    progress.FileStore(tmp_path / "p").add([outcome("0.1", True)])
    forget = subprocess.run(
        [PYTHON, "-m", "coursedb.progress", "--forget"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert forget.returncode == 0 and f"Forgot every checker run recorded in {tmp_path / 'p'}" in forget.stdout
    assert not (tmp_path / "p").exists()
