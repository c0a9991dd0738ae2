"""Where everyone stands: the outcome of every checker run, for the learner and, in a room, the instructor.

An outcome says who ran a checker, for which exercise, whether it passed, which checks failed
(each check's id is its test function's name, with the sentence it said) and when. Only
outcomes: never the learner's code.

Two stores, one small API (``record``, ``flush``, ``my_outcomes``):

- **On a laptop**, a file of the learner's own, ``outcomes.jsonl`` in a per-user data folder
  (``local_folder()``: ``~/.local/share/coursedb/progress`` on Linux, ``~/Library/Application
  Support/coursedb/progress`` on macOS, ``%LOCALAPPDATA%\\coursedb\\progress`` on Windows). It is
  outside the server's data directory and outside ``COURSEDB_HOME``, so ``python -m coursedb stop``
  and kernel restarts leave it alone; ``python3 course.py progress --forget`` removes it.
- **On a room server**, the table ``public.coursedb_outcomes`` that the instructor creates
  (``create_table``; a learner's role cannot create tables in ``postgres`` on PostgreSQL 15+).
  Row-level security keyed on ``current_user`` lets a learner's role insert and read only its own
  rows; only the table's owner (the instructor) reads everyone's.

Recording never slows or breaks a cell: ``record`` queues the outcome and returns at once; the
owner's EXISTING session (the keeper's, so no connection beyond the room's budget) sends it in
the keeper's own thread. If the server is away the outcome stays queued and goes with the next
one, or is dropped at exit without a word. ``COURSEDB_PROGRESS=<folder>`` makes a process record
into the file store in that folder instead (the notebook run, so committed outputs stay stable);
``COURSEDB_PROGRESS=off`` records nothing.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncpg

ENV = "COURSEDB_PROGRESS"
TABLE = "public.coursedb_outcomes"
FILE = "outcomes.jsonl"
ID_FILE = "learner"
STUCK_AFTER = 3  # failed runs of an exercise, never passed: stuck
SENTENCE_MAX = 300  # characters of a check's sentence that are kept
MAX_QUEUED = 1000  # outcomes kept while the server is away; older ones are dropped
RECHECK_S = 60.0  # how soon a session that found no table looks again (the instructor may create it later)
EXERCISE_ID = re.compile(r"^\d+\.\d+$")


# --- what is recorded -----------------------------------------------------------------------


@dataclass(frozen=True)
class Failed:
    """One check that failed: its stable id (the test function's name) and the sentence it said."""

    check: str
    said: str


@dataclass(frozen=True)
class Outcome:
    learner: str
    exercise: str  # "3.2": notebook 03's second exercise
    passed: bool
    failed: tuple[Failed, ...] = ()
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def to_json(self) -> str:
        return json.dumps({
            "learner": self.learner, "exercise": self.exercise, "passed": self.passed,
            "failed": [[f.check, f.said] for f in self.failed], "at": self.at.isoformat(),
        })  # fmt: skip

    @classmethod
    def from_json(cls, line: str) -> Outcome:
        data = json.loads(line)
        return cls(
            learner=str(data["learner"]),
            exercise=str(data["exercise"]),
            passed=bool(data["passed"]),
            failed=tuple(Failed(str(c), str(s)) for c, s in data.get("failed", [])),
            at=datetime.fromisoformat(data["at"]),
        )


def check_id(nodeid: str) -> str:
    """A test's stable id from its pytest node id: the function's name, without parameters."""
    return nodeid.split("::")[-1].split("[")[0]


def sentence(longrepr: Any) -> str:
    """The one sentence a failed check said: the first line of its error, without 'AssertionError: '."""
    crash = getattr(longrepr, "reprcrash", None)
    text = str(crash.message if crash is not None else longrepr or "").strip()
    first = text.splitlines()[0].strip() if text else ""
    for prefix in ("AssertionError: ", "Failed: ", "E   "):
        first = first.removeprefix(prefix)
    return first[:SENTENCE_MAX]


# --- the laptop's store: a file of the learner's own --------------------------------------------


def local_folder() -> Path:
    """The per-user data folder of the file store (not COURSEDB_HOME: ``stop`` removes that)."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "coursedb" / "progress"


class FileStore:
    """Outcomes as JSON lines in ``folder``; each line is written with one append (several kernels may write)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / FILE

    @property
    def learner(self) -> str:
        """A stable local id, made once: outcomes on a laptop name nobody."""
        path = self.folder / ID_FILE
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            self.folder.mkdir(parents=True, exist_ok=True)
            made = f"local-{secrets.token_hex(4)}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another kernel made it first: theirs is ours
                return path.read_text().strip()
            with os.fdopen(fd, "w") as f:
                f.write(made + "\n")
            return made

    def add(self, outcomes: Iterable[Outcome]) -> None:
        data = "".join(o.to_json() + "\n" for o in outcomes).encode()
        if not data:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o600)
        try:
            size = os.fstat(fd).st_size
            if size:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":  # a line cut short by a killed kernel: ours starts on a new one
                    data = b"\n" + data
            os.write(fd, data)  # O_APPEND: at the end, whatever the offset
        finally:
            os.close(fd)

    def read(self) -> list[Outcome]:
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in lines:
            try:
                found.append(Outcome.from_json(line))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a killed kernel: the others still count
        return found

    def forget(self) -> bool:
        """Remove the store; True if there was one."""
        existed = self.path.exists()
        for name in (FILE, ID_FILE):
            (self.folder / name).unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass  # not empty (someone else's file) or already gone: leave it
        return existed


def file_store() -> FileStore | None:
    """This process's file store: COURSEDB_PROGRESS's folder, the per-user one, or None when 'off'."""
    chosen = os.environ.get(ENV, "").strip()
    if chosen.lower() == "off":
        return None
    return FileStore(Path(os.path.expanduser(chosen)) if chosen else local_folder())


# --- the room's store: a table the instructor creates, with row-level security -------------------

CREATE_SQL = f"""
CREATE TABLE {TABLE} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    learner name NOT NULL DEFAULT current_user,
    exercise text NOT NULL CHECK (exercise ~ '^[0-9]+[.][0-9]+$'),
    passed boolean NOT NULL,
    failed jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(failed) = 'array' AND octet_length(failed::text) < 20000),
    at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE {TABLE} IS 'coursedb: one row per checker run (outcomes only, never code)';
CREATE INDEX ON {TABLE} (learner, exercise);
-- Privacy by the server: a learner's role sees and writes its own rows only. The owner (the instructor
-- who ran this) is not subject to the policy and reads everyone's.
ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_outcomes ON {TABLE} USING (learner = current_user) WITH CHECK (learner = current_user);
REVOKE ALL ON {TABLE} FROM PUBLIC;
GRANT SELECT, INSERT ON {TABLE} TO PUBLIC;
"""

# Who may own the table, as a learner's kernel sees it: a superuser, a role that may create roles (the
# instructor made the learners' roles), or the database's owner. On PostgreSQL 14 and older any role may
# create tables in public: a table a learner made first would hand them everyone's outcomes.
TRUSTED_OWNER = """
SELECT r.rolsuper OR r.rolcreaterole OR r.oid = d.datdba
FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner, pg_database d
WHERE c.oid = to_regclass($1) AND d.datname = current_database()
"""

INSERT_SQL = f"""
INSERT INTO {TABLE} (exercise, passed, failed, at)
SELECT e, p, f::jsonb, now() - make_interval(secs => a)
FROM unnest($1::text[], $2::boolean[], $3::text[], $4::float8[]) AS t(e, p, f, a)
"""


async def table_state(conn: asyncpg.Connection) -> str:
    """'usable' (exists, trusted owner, we may insert), 'missing', or 'untrusted'."""
    if await conn.fetchval("SELECT to_regclass($1)", TABLE) is None:
        return "missing"
    if not await conn.fetchval(TRUSTED_OWNER, TABLE):
        return "untrusted"
    if not await conn.fetchval("SELECT has_table_privilege($1, 'INSERT')", TABLE):
        return "missing"
    return "usable"


READERS_POLICY = "instructor_reads"


async def create_table(conn: asyncpg.Connection, reader: str | None = None) -> str:
    """Create the outcomes table if missing, as this role (the room's administrator: on PostgreSQL 15+
    only a role with CREATE on ``public`` can); ``reader`` (the instructor's role) may read every row.
    Say what was done.

    Refuses (ValueError, one sentence) when the table cannot be made here, or when it exists and this
    role cannot read it whole (a learner's role: the room view would show only their own rows).
    """
    me = await conn.fetchval("SELECT current_user")
    owner = await conn.fetchval("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass($1)", TABLE)
    said = f"{TABLE} is there (owner {owner})"
    if owner is None:
        try:
            async with conn.transaction():
                await conn.execute(CREATE_SQL)
        except asyncpg.InsufficientPrivilegeError:
            raise ValueError(
                f"the role {me} may not create {TABLE} on this server (PostgreSQL 15+ keeps CREATE on public "
                "for its owner): run python -m coursedb room add (or room view) once as the room's "
                "administrator, the role that may create roles, which makes it"
            ) from None
        owner = me
        said = f"created {TABLE} (row-level security: each learner's role reads and writes only its own rows)"
    if (
        reader is not None
        and await _may_alter(conn)
        and await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", reader)
    ):
        ident = '"' + reader.replace('"', '""') + '"'
        async with conn.transaction():
            await conn.execute(f"DROP POLICY IF EXISTS {READERS_POLICY} ON {TABLE}")
            await conn.execute(f"CREATE POLICY {READERS_POLICY} ON {TABLE} FOR SELECT TO {ident} USING (true)")
        said += f"; the role {reader} reads every learner's rows"
    if not await reads_everyone(conn):
        raise ValueError(
            f"{TABLE} belongs to the role {owner}, and {me} reads only its own rows there: run the room view "
            f"as the instructor (the role in room-credentials.json) or as {owner}"
        )
    return said


async def _may_alter(conn: asyncpg.Connection) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT rolsuper OR pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = to_regclass($1)),"
            " 'USAGE') FROM pg_roles WHERE rolname = current_user",
            TABLE,
        )
    )


async def reads_everyone(conn: asyncpg.Connection) -> bool:
    """Does this role read every learner's rows: it owns the table (or is a member of its owner), is a
    superuser, bypasses row-level security, or a read-all policy names a role it belongs to?"""
    return bool(
        await conn.fetchval(
            """
            SELECT r.rolsuper OR r.rolbypassrls
                OR pg_has_role(current_user, c.relowner, 'USAGE')
                OR EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = $2
                           AND EXISTS (SELECT FROM unnest(p.polroles) AS g WHERE pg_has_role(current_user, g, 'USAGE')))
            FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = to_regclass($1)
            """,
            TABLE,
            READERS_POLICY,
        )
    )


async def insert(conn: asyncpg.Connection, outcomes: Sequence[Outcome]) -> None:
    """One statement, so a batch is written whole or not at all. The server's clock dates it: the
    outcome's age is sent, not the client's time (laptops in a room disagree about the time)."""
    now = datetime.now(timezone.utc)
    await conn.execute(
        INSERT_SQL,
        [o.exercise for o in outcomes],
        [o.passed for o in outcomes],
        [json.dumps([[f.check, f.said] for f in o.failed]) for o in outcomes],
        [max((now - o.at).total_seconds(), 0.0) for o in outcomes],
    )


async def fetch(conn: asyncpg.Connection, learner: str | None = None) -> list[Outcome]:
    """Outcomes on the server, oldest first: all the role may read, or only ``learner``'s."""
    where, args = ("WHERE learner = $1", [learner]) if learner is not None else ("", [])
    rows = await conn.fetch(
        f"SELECT learner, exercise, passed, failed::text, at FROM {TABLE} {where} ORDER BY id", *args
    )
    return [
        Outcome(
            row["learner"],
            row["exercise"],
            row["passed"],
            tuple(Failed(str(c), str(s)) for c, s in json.loads(row["failed"])),
            row["at"],
        )
        for row in rows
    ]


# --- recording from a kernel ------------------------------------------------------------------


class _Queue:
    """Outcomes waiting for the keeper's session, and what each session found on its server."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[Outcome] = []
        self.found: dict[int, tuple[str, float]] = {}  # id(connection) -> (table state, when looked)
        self.sending: dict[int, asyncio.Task] = {}  # id(keeper) -> its running send
        self.exit_hook = False

    def put(self, outcome: Outcome) -> None:
        with self.lock:
            self.items.append(outcome)
            del self.items[:-MAX_QUEUED]

    def take(self) -> list[Outcome]:
        with self.lock:
            taken, self.items = self.items, []
        return taken

    def put_back(self, outcomes: list[Outcome]) -> None:
        with self.lock:
            self.items[:0] = outcomes
            del self.items[:-MAX_QUEUED]


_queue = _Queue()


def _my_keeper():
    """This process's session on the server of its own database, or None (no database taken yet)."""
    import coursedb

    return coursedb.own_session()


def record(exercise: str, passed: bool, failed: Sequence[Failed] = ()) -> None:
    """Keep one checker run's outcome. Never raises, never waits on the server."""
    try:
        if not EXERCISE_ID.match(exercise):
            return
        store = file_store()
        if store is None:
            return
        chosen = os.environ.get(ENV, "").strip()
        keeper = None if chosen else _my_keeper()
        if keeper is None:
            store.add([Outcome(store.learner, exercise, passed, tuple(failed))])
            return
        # The learner's name on the server is its role: the server fills it in.
        _queue.put(Outcome("", exercise, passed, tuple(failed)))
        if not _queue.exit_hook:
            _queue.exit_hook = True
            atexit.register(flush, 1.0)  # runs before coursedb closes the session (atexit is last-in first-out)
        keeper.loop.call_soon_threadsafe(_start_send, keeper)
    except Exception:
        pass  # recording is a side show: a cell's verdict must never depend on it


def _start_send(keeper) -> asyncio.Task:
    """On the keeper's loop: one send at a time per keeper; a send already running is reused."""
    running = _queue.sending.get(id(keeper))
    if running is None or running.done():
        running = _queue.sending[id(keeper)] = keeper.loop.create_task(_send(keeper))
    else:
        running.add_done_callback(lambda _: _start_send(keeper) if _queue.items else None)
    return running


async def _send(keeper) -> None:
    async with keeper.lock:  # the session is shared with the keeper's own statements
        conn = keeper.conn
        if conn is None or conn.is_closed():
            return  # kept: the keeper re-opens its session, the next outcome or flush() sends these
        batch = _queue.take()
        if not batch:
            return
        try:
            state = await _table_state(conn)
            if state == "usable":
                await insert(conn, batch)
            else:
                store = FileStore(local_folder())
                learner = store.learner
                store.add(Outcome(learner, o.exercise, o.passed, o.failed, o.at) for o in batch)
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
            pass  # rows the table refuses (a sentence far too long): dropping them is all there is to do
        except Exception:
            # The session went away mid-send; asyncpg says so in several ways (InterfaceError,
            # ConnectionDoesNotExistError, InternalClientError, OSError). Kept for the next try.
            _queue.put_back(batch)


async def _table_state(conn: asyncpg.Connection) -> str:
    seen = _queue.found.get(id(conn))
    if seen is not None and (seen[0] == "usable" or time.monotonic() - seen[1] < RECHECK_S):
        return seen[0]
    state = await table_state(conn)
    _queue.found = {id(conn): (state, time.monotonic())}  # one session at a time: forget older ones
    return state


def flush(timeout: float = 2.0) -> bool:
    """Send what is queued or on its way now (tests, the progress cell, exit); True if nothing is left."""
    keeper = _my_keeper()
    if keeper is None:
        return not _queue.items

    async def send_all() -> None:
        while True:
            running = _queue.sending.get(id(keeper))
            if running is not None and not running.done():
                await asyncio.wait([running])  # one already on its way: wait for it, whatever it ends with
            if not _queue.items:
                return
            before = len(_queue.items)
            await asyncio.wait([_start_send(keeper)])
            if len(_queue.items) >= before:
                return  # nothing went: the server is away

    try:
        keeper.call(send_all(), timeout)
    except Exception:
        pass  # away or frozen: the outcomes stay queued
    return not _queue.items


# --- reading: what a learner has done ------------------------------------------------------------


def my_outcomes(timeout: float = 2.0) -> tuple[list[Outcome], str | None]:
    """This learner's outcomes, oldest first, and a sentence if the room's server could not be read."""
    chosen = os.environ.get(ENV, "").strip()
    store = file_store()
    if store is None:
        return [], None
    keeper = None if chosen else _my_keeper()
    if keeper is None:
        return store.read(), None
    flush(timeout)

    async def read() -> list[Outcome] | None:
        async with keeper.lock:
            conn = await keeper.session()
            if await _table_state(conn) != "usable":
                return None
            return await fetch(conn, await conn.fetchval("SELECT current_user"))

    try:
        found = keeper.call(read(), timeout)
    except Exception:
        return store.read(), "the room's server did not answer, so this shows what this computer recorded"
    return (store.read(), None) if found is None else (found, None)


@dataclass
class Standing:
    """One learner on one exercise."""

    runs: int = 0
    failed_runs: int = 0
    passed: bool = False  # some run passed
    last_passed: bool = False
    last_at: datetime | None = None
    last_failed: tuple[Failed, ...] = ()  # the checks the latest run failed

    @property
    def status(self) -> str:
        if self.passed:
            return "passed"
        return "trying" if self.runs else "not started"

    @property
    def stuck(self) -> bool:
        return not self.passed and self.failed_runs >= STUCK_AFTER


def standings(outcomes: Iterable[Outcome]) -> dict[tuple[str, str], Standing]:
    """(learner, exercise) -> where that learner stands on it; ``outcomes`` oldest first."""
    found: dict[tuple[str, str], Standing] = {}
    for o in outcomes:
        s = found.setdefault((o.learner, o.exercise), Standing())
        s.runs += 1
        s.failed_runs += not o.passed
        s.passed = s.passed or o.passed
        s.last_passed, s.last_at, s.last_failed = o.passed, o.at, o.failed
    return found


def exercise_key(exercise: str) -> tuple[int, int]:
    major, minor = exercise.split(".")
    return int(major), int(minor)


@dataclass(frozen=True)
class BookExercises:
    stem: str  # "03_rollback_isolation"
    title: str
    exercises: tuple[str, ...]


def course_exercises(folder: Path | None = None) -> list[BookExercises]:
    """Every notebook's exercises, in course order, from the checker cells' ``exercise`` key."""
    if folder is None:
        from .paths import course_file

        folder = course_file("notebooks")
    books = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        except (OSError, ValueError):
            continue
        title, found = path.stem, []
        for cell in cells:
            source = "".join(cell.get("source", []))
            if title == path.stem and cell.get("cell_type") == "markdown":
                match = re.search(r"^# (?:\d\d · )?(.+)$", source, flags=re.MULTILINE)
                title = match.group(1).strip() if match else title
            exercise = cell.get("metadata", {}).get("exercise")
            if "checker" in cell.get("metadata", {}).get("tags", []) and isinstance(exercise, str):
                found.append(exercise)
        books.append(BookExercises(path.stem, title, tuple(found)))
    return books


def describe(books: Sequence[BookExercises], outcomes: Sequence[Outcome], only: str | None = None) -> list[str]:
    """The learner's view: per notebook, which exercises pass, which were tried and how often, what next.

    ``only``: a notebook's number ("03") or stem, for the table at the end of that notebook.
    """
    mine = {ex: s for (_learner, ex), s in standings(outcomes).items()}
    shown = [b for b in books if only is None or b.stem.startswith(only)]
    lines = []
    for book in shown:
        if not book.exercises:
            continue
        passed = sum(mine.get(ex, Standing()).passed for ex in book.exercises)
        head = f"{book.stem[:2]} · {book.title}: {passed} of {len(book.exercises)} exercises pass"
        if only is None and not any(ex in mine for ex in book.exercises):
            lines.append(f"{head}, none tried yet")  # the whole course at a glance: untouched books in a line
            continue
        lines.append(head)
        for ex in book.exercises:
            s = mine.get(ex, Standing())
            runs = f"{s.runs} checker run{'s' if s.runs != 1 else ''}"
            if s.passed:
                state = "passed" if s.last_passed else "passed (the latest run failed: run its checker again)"
            elif s.runs:
                state = f"not yet ({s.failed_runs} failed)"
            else:
                state = "not started"
            lines.append(f"  {ex:<5} {state:<24} {runs if s.runs else ''}".rstrip())
    lines.append(next_step(shown, mine))
    return lines


def next_step(books: Sequence[BookExercises], mine: dict[str, Standing]) -> str:
    """What to do next: the first exercise in course order that does not pass yet."""
    for book in books:
        for ex in book.exercises:
            s = mine.get(ex, Standing())
            if s.passed:
                continue
            where = f"exercise {ex} in {book.stem}.ipynb"
            if s.stuck:
                return f"Next: {where}. Its checker failed {s.failed_runs} times: open the hints under it."
            if s.runs:
                return f"Next: {where}; the checker's report says what is missing."
            return f"Next: {where}."
    total = sum(len(b.exercises) for b in books)
    return f"Every exercise here passes ({total} of {total})."


def show(only: str | None = None) -> None:
    """Print the learner's progress (a notebook's cell: ``show("03")``; notebook 00: ``show()``)."""
    outcomes, note = my_outcomes()
    for line in describe(course_exercises(), outcomes, only):
        print(line)
    if note:
        print(f"coursedb: {note}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """``python3 course.py progress [--forget]``: the learner's view in a terminal."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python3 course.py progress",
        description="Which exercises pass, which you tried and how often, and what to do next.",
    )
    parser.add_argument("--forget", action="store_true", help="remove this computer's record of checker runs")
    args = parser.parse_args(argv)
    store = file_store()
    if args.forget:
        if store is None:
            print(f"coursedb: {ENV}=off: nothing is recorded, nothing to forget.")
        elif store.forget():
            print(f"Forgot every checker run recorded in {store.folder}.")
        else:
            print(f"Nothing recorded in {store.folder}.")
        return 0
    outcomes, where = _outcomes_for_cli(store)
    for line in describe(course_exercises(), outcomes):
        print(line)
    print(f"(recorded {where}; kept across kernel restarts and 'python -m coursedb stop')")
    if store is not None and where.startswith("in "):
        print("('python3 course.py progress --forget' removes it)")
    return 0


def _outcomes_for_cli(store: FileStore | None) -> tuple[list[Outcome], str]:
    """From the room's server when this computer's COURSEDB_URL has the table, else from the file."""
    if store is None:
        return [], f"nowhere: {ENV}=off"
    if not os.environ.get(ENV, "").strip():
        from .settings import Settings, describe_url

        url = Settings.from_env().url
        if url:
            try:
                found = asyncio.run(_read_room(url))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError):
                found = None
            if found is not None:
                return found, f"on the room's server {describe_url(url)}"
    return store.read(), f"in {store.path}"


async def _read_room(url: str) -> list[Outcome] | None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        if await table_state(conn) != "usable":
            return None
        return await fetch(conn, await conn.fetchval("SELECT current_user"))
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
