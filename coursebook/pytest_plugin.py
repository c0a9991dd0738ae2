"""One kernel run per notebook: the pytest plugin of the course's test command (``-p coursebook.pytest_plugin``).

nbval collects every committed notebook; this plugin swaps its collector for ``CourseBook``, which
runs the notebook the way a learner does and checks everything about it in that one kernel:

1. the nbval cells: Run All, each cell's output compared with the committed one (strict nbval),
   in a kernel started in a folder of learner copies outside the repository (``course.py
   learners``), so nothing may depend on the repository as the working directory;
2. ``Run All again``: every code cell runs again and must show what the committed notebook shows
   (only ``raises-exception`` cells may fail; of those, the error is compared). At each checker,
   while the stub is still in place: every wrong answer of the catalogue (notebooks/answers/)
   replaces the stub and the checker must fail with the entry's hint within 30 s, then a one-line
   cell proves the kernel still answers; then the model answer (the ``solution`` cell of
   notebooks/src/) must pass the checker; then the stub is put back;
3. ``each cell twice``: a third pass, every code cell twice in a row, and none may fail unless
   tagged ``raises-exception``;
4. ``connection budget``: the most sessions the kernel (and any process it started) had open at
   once, counted from the log of the run's own server (coursedb.room.BUDGET): wrong answers and
   the each-cell-twice pass are left out. Counted on the embedded backend; with
   ``COURSEDB_BACKEND=docker|url`` (or a ``COURSEDB_URL``) the notebooks run on that server instead
   and this item is skipped.

``--dist loadfile`` keeps each notebook's items on one worker, in order, on one kernel.
``--nbval-only`` leaves nbval alone (strict nbval of the committed notebooks, nothing else).
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbval.kernel import RunningKernel, start_new_kernel
from nbval.plugin import IPyNbFile

from coursebook.cells import RAISES, tags
from coursebook.model import BOOK_DIR, SOURCE_NAME, find_exercises, iter_notebooks
from coursedb import names

CHECKER_TIMEOUT_S = 30  # one checker run, as a learner waits for it (issue 10's bound)
# gc: a never-awaited coroutine of an answer warns now, not as an error inside the next checker's tests
ALIVE = "import gc; gc.collect(); print('kernel alive')"
RUN_ALL_AGAIN_TIMEOUT_S = 900


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--nbval-only",
        action="store_true",
        help="run the notebooks under strict nbval alone, in their own folder (what nbval itself does)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    found = yield
    if parent.config.getoption("nbval_only"):
        return found
    if file_path.parent != BOOK_DIR or not SOURCE_NAME.match(file_path.stem + ".py"):
        return found
    return [CourseBook.from_parent(parent, path=file_path) if type(f) is IPyNbFile else f for f in found]


# --- what the run's notebooks share -------------------------------------------------------------

# A private embedded server for the whole run, made by the first process (the xdist controller) and
# started by the first worker that runs a notebook: every notebook runs on it, two at once under
# xdist, as learners' kernels share a room's server. It logs every session, so each kernel's
# connections are counted: those on its own database (coursedb_<pid>_...) and those that name its
# pid (its liveness session, its admin sessions), its child processes' included (07's pytest -n 2).
SERVER_HOME = "COURSEBOOK_SERVER_HOME"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or config.getoption("nbval_only") or not _counts_connections():
        return
    if SERVER_HOME in os.environ:
        return  # an outer run's server (a test of this plugin): not ours to make or stop
    from coursebook.servers import make_home

    home = make_home()
    os.environ[SERVER_HOME] = str(home)  # xdist's workers start after this, with this environment
    config.stash[_home_key] = home


def pytest_unconfigure(config: pytest.Config) -> None:
    global _bench
    if _bench is not None:
        shutil.rmtree(_bench.folder.parent, ignore_errors=True)
        _bench = None
    home = config.stash.get(_home_key, None)
    if home is not None:
        from coursebook.servers import cleanup

        for problem in cleanup(home):
            print(f"coursebook: the notebooks' server: {problem}", file=sys.stderr)
        os.environ.pop(SERVER_HOME, None)


_home_key = pytest.StashKey[Path]()


def _counts_connections() -> bool:
    backend = os.environ.get("COURSEDB_BACKEND", "auto")
    return backend in ("auto", "embedded") and not os.environ.get("COURSEDB_URL")


@dataclass
class Workbench:
    """A folder of learner copies outside the repository, and (embedded backend) the run's logged server."""

    folder: Path
    env: dict[str, str] | None = None  # the kernels' environment; None: this process's own
    log: Path | None = None


_bench: Workbench | None = None


def workbench() -> Workbench:
    global _bench
    if _bench is None:
        from coursebook import learners

        folder = Path(tempfile.mkdtemp(prefix="coursebook-learner-")) / "room"
        learners.make(folder)
        _bench = Workbench(folder)
        if os.environ.get(SERVER_HOME):
            _start_logged_server(_bench, Path(os.environ[SERVER_HOME]))
    return _bench


def _start_logged_server(bench: Workbench, home: Path) -> None:
    from coursebook.servers import PrivateServer
    from coursedb import room

    server = PrivateServer(home)
    state = server.start()  # the other worker may be starting it too: coursedb takes a lock
    asyncio.run(room.enable_connection_log(state["admin_url"]))
    bench.env = server.env()
    bench.log = Path(state["log"])


# --- the notebook -------------------------------------------------------------------------------


class CourseKernel(RunningKernel):
    """nbval's kernel, started in the learner folder, with the workbench's environment."""

    def __init__(self, kernel_name: str, cwd: Path, env: dict[str, str] | None, startup_timeout: int) -> None:
        extra = {"env": env} if env is not None else {}
        self.km, self.kc = start_new_kernel(
            startup_timeout=startup_timeout,
            kernel_name=kernel_name,
            stderr=open(os.devnull, "w"),  # noqa: SIM115 (nbval's own choice: the kernel owns it)
            cwd=str(cwd),
            **extra,
        )
        self._ensure_iopub_up()


class CourseBook(IPyNbFile):
    log_start = 0
    uncounted_spans: list[tuple[int, int]]
    cells_run: list[tuple[int, str]]

    def setup(self) -> None:
        bench = workbench()
        self.uncounted_spans, self.cells_run = [], []
        if bench.log is not None:
            self.log_start = bench.log.stat().st_size
        kernel_name = self.nb.metadata.get("kernelspec", {}).get("name", "python")
        self.kernel = CourseKernel(
            kernel_name,
            cwd=bench.folder / "notebooks",
            env=bench.env,
            startup_timeout=self.config.option.nbval_kernel_startup_timeout,
        )
        self.setup_sanitize_files()
        self.family = Family(self.kernel.km.provisioner.pid)

    def teardown(self) -> None:
        self.family.stop()
        super().teardown()

    def collect(self):
        yield from super().collect()
        again = RunAllAgain.from_parent(self, name="Run All again")
        # every wrong answer, right answer and mutant runs the checker once: far more than one Run All
        again.add_marker(pytest.mark.timeout(RUN_ALL_AGAIN_TIMEOUT_S))
        yield again
        yield EachCellTwice.from_parent(self, name="each cell twice")
        yield ConnectionBudget.from_parent(self, name="connection budget")

    def log_offset(self) -> int | None:
        """How far the run's server log has grown since this kernel started; None if nothing is logged."""
        log = workbench().log
        return None if log is None else log.stat().st_size - self.log_start

    @functools.cached_property
    def committed_cells(self) -> list[Any]:
        """The notebook's cells as committed (nbval changes its own copy's outputs as it compares)."""
        return nbformat.read(self.path, as_version=4).cells

    def run(self, code: str, timeout: float) -> Ran:
        """Execute ``code`` as one cell; a cell still running after ``timeout`` is interrupted."""
        ran = Ran()
        at = self.log_offset()
        if at is not None:  # where in the server's log each cell began, for the budget's report
            self.cells_run.append((at, code))

        def collect(msg: dict) -> None:
            if msg["msg_type"] in ("stream", "error", "execute_result", "display_data"):
                ran.outputs.append(nbformat.v4.output_from_msg(msg))

        try:
            self.kernel.kc.execute_interactive(code, output_hook=collect, timeout=timeout, allow_stdin=False)
        except TimeoutError:
            self.kernel.km.interrupt_kernel()
            self.kernel.kc.execute_interactive("", timeout=60)  # the interrupted cell has ended
            ran.timed_out = True
        return ran

    def visible(self, cell: Any, failing: bool = False) -> str:
        """What a reader sees of a cell's outputs, volatile parts sanitized as nbval does. Of a cell that
        fails on purpose only its error: a pitfall's report may show other generated examples on a rerun."""
        errors = [out for out in cell.outputs if out.output_type == "error"]
        text = "".join(_text(out) for out in (errors if failing else cell.outputs))
        for regex, replace in self.sanitize_patterns.items():
            text = re.sub(regex, replace, text)
        return text


class Family(threading.Thread):
    """The pids of a kernel and of every process it started, seen every 0.1 s while it runs.

    Only to tell its sessions in the server's log from another kernel's; the count is the log's."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pids = {pid}
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        import psutil

        root = next(iter(self.pids))
        while not self.done.wait(0.1):
            try:
                self.pids |= {child.pid for child in psutil.Process(root).children(recursive=True)}
            except psutil.Error:
                return

    def stop(self) -> None:
        self.done.set()

    def owns(self, database: str, application_name: str) -> bool:
        """A session on a database coursedb made for one of these pids, or one that names such a pid."""
        return names.session_pid(database, application_name) in self.pids


@dataclass
class Ran:
    outputs: list[Any] = field(default_factory=list)
    timed_out: bool = False

    @property
    def failed(self) -> bool:
        return self.timed_out or any(out.output_type == "error" for out in self.outputs)

    @property
    def text(self) -> str:
        plain = "".join(_text(out) for out in self.outputs) + ("TIMEOUT" if self.timed_out else "")
        return re.sub(r"\s+", " ", re.sub(r"\x1b\[[0-9;]*m", "", plain))


def _where(index: int, cell: Any) -> str:
    return f"cell {index} ({cell.source.strip().splitlines()[0][:60]!r})"


def _text(out: Any) -> str:
    if out.output_type == "stream":
        return out.text
    if out.output_type == "error":
        return f"{out.ename}: {out.evalue}"
    return out.get("data", {}).get("text/plain", "")


class RunAllAgain(pytest.Item):
    """The second Run All in the same kernel: the committed text again, exercises tried wrong and right."""

    parent: CourseBook

    def runtest(self) -> None:
        book = self.parent
        if not book.kernel.is_alive():
            raise RuntimeError("the kernel died during the first Run All")
        stem = self.path.stem
        (source,) = iter_notebooks([stem])
        cells = book.committed_cells
        exercises = find_exercises(cells)
        checker_of = {ex.checker: ex_id for ex_id, ex in exercises.items()}
        in_exercise = {i for ex in exercises.values() for i in (ex.stub, ex.checker, *ex.hints)}
        compare = not self.config.option.nbval_lax
        problems: list[str] = []
        shown: list[Any] = []
        for index, cell in enumerate(cells):
            if cell.cell_type != "code":
                continue
            where = _where(index, cell)
            allowed = RAISES in tags(cell)
            first = book.run(cell.source, timeout=self.config.option.nbval_cell_timeout)
            shown += first.outputs
            if first.failed and not allowed:
                problems.append(f"{where} failed on Run All again: {first.text[-800:]}")
            elif compare and index not in in_exercise and book.visible(first, allowed) != book.visible(cell, allowed):
                problems.append(f"{where} shows something else on Run All again: {first.text[-800:]}")
            if index in checker_of:
                ex_id = checker_of[index]
                problems += self.try_exercise(ex_id, cells, exercises[ex_id], source)
        text = "\n".join(str(out) for out in shown)
        facts = source.facts  # what the notebook's header says it must (not) show, beyond its text
        missing = [s for s in facts.must_show if s not in text]
        problems += [f"{stem} does not show {s!r} outside the repository" for s in missing]
        problems += [f"{stem} shows {s!r} outside the repository" for s in facts.must_not_show if s in text]
        assert not problems, "\n".join(problems)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name}: Run All again"

    def try_exercise(self, ex_id: str, cells: list[Any], exercise: Any, source: Any) -> list[str]:
        from coursebook import answers

        book = self.parent
        stub, checker = cells[exercise.stub].source, cells[exercise.checker].source
        problems = []
        on_stub = book.run(checker, CHECKER_TIMEOUT_S)
        if not on_stub.failed or f"Exercise {ex_id}" not in on_stub.text:
            problems.append(f"Exercise {ex_id}: the checker must fail on the untouched stub with a hint naming it")
        entries = answers.for_notebook(source).wrong(ex_id)
        if len(entries) < 3:
            problems.append(f"Exercise {ex_id}: {len(entries)} wrong answers in the catalogue, at least 3 expected")
        target = answers.function_name(stub)
        start = book.log_offset()
        for entry in entries:
            label = f"Exercise {ex_id}, wrong answer {entry.name} ({entry.description})"
            answer = book.run(answers.with_imports_of(stub, entry.cell_source(target)), CHECKER_TIMEOUT_S)
            if answer.failed:
                problems.append(f"{label}: the answer cell itself failed: {answer.text[-800:]}")
                continue
            verdict = book.run(checker, CHECKER_TIMEOUT_S)
            if not verdict.failed:
                problems.append(f"{label}: ACCEPTED by the checker")
            elif verdict.timed_out:
                problems.append(f"{label}: the checker ran longer than {CHECKER_TIMEOUT_S} s")
            elif " ".join(entry.hint.split()) not in verdict.text:
                problems.append(f"{label}: rejected, but without the hint {entry.hint!r}: {verdict.text[:1000]}")
            alive = book.run(ALIVE, CHECKER_TIMEOUT_S)
            if "kernel alive" not in alive.text:
                problems.append(f"{label}: the kernel did not run the next cell: {alive.text[-400:]}")
        solution = source.cells[source.exercises[ex_id].solution].source
        rejected = len(entries) - sum(f"Exercise {ex_id}, wrong answer" in problem for problem in problems)
        problems += self.try_right_and_mutants(ex_id, stub, checker, source, len(entries), rejected)
        if start is not None:  # a wrong answer may open what it likes: the budget is the course's own code's
            book.uncounted_spans.append((start, book.log_offset()))
        answer = book.run(solution, CHECKER_TIMEOUT_S)
        verdict = book.run(checker, CHECKER_TIMEOUT_S)
        if answer.failed or verdict.failed or "passed" not in verdict.text:
            problems.append(f"Exercise {ex_id}: the model answer does not pass its checker: {verdict.text[:1000]}")
        book.run(stub, CHECKER_TIMEOUT_S)  # the stub back in place, as the committed notebook has it
        return problems

    def try_right_and_mutants(
        self, ex_id: str, stub: str, checker: str, source: Any, hand: int, rejected: int
    ) -> list[str]:
        """Every right answer of the catalogue must pass the checker; every mutant of the model answer must
        fail it, unless the catalogue lists it as equivalent (coursebook/mutants.py)."""
        from coursebook import answers, mutants

        book, problems = self.parent, []
        rights = answers.for_notebook(source).right(ex_id)  # loading the catalogue lists its equivalent mutants
        if len(rights) < 2:
            problems.append(f"Exercise {ex_id}: {len(rights)} right answers in the catalogue, at least 2 expected")
        accepted = 0
        for entry in rights:
            label = f"Exercise {ex_id}, right answer {entry.name} ({entry.description})"
            answer = book.run(
                answers.with_imports_of(stub, entry.cell_source(answers.function_name(stub))), CHECKER_TIMEOUT_S
            )
            verdict = book.run(checker, CHECKER_TIMEOUT_S)
            if answer.failed or verdict.failed or "passed" not in verdict.text:
                problems.append(f"{label}: REJECTED by the checker: {(answer.text + verdict.text)[-1500:]}")
            else:
                accepted += 1
        made = mutants.mutants(ex_id, source.cells[source.exercises[ex_id].solution].source)
        names = {mutant.name for mutant in made}
        listed = {name: why for (ex, name), why in mutants.EQUIVALENT.items() if ex == ex_id}
        stale = [name for name in listed if name not in names]
        problems += [
            f"Exercise {ex_id}: {name!r} is listed as equivalent, but no such mutant is made" for name in stale
        ]
        killed = 0
        for mutant in made:
            if mutant.name in listed:
                continue
            label = f"Exercise {ex_id}, mutant {mutant.name!r}"
            answer = book.run(mutant.source, CHECKER_TIMEOUT_S)
            verdict = book.run(checker, CHECKER_TIMEOUT_S) if not answer.failed else answer
            if not verdict.failed:
                problems.append(f"{label} SURVIVED: the checker accepts it (if it is equivalent, list it, with why)")
            elif verdict.timed_out:
                problems.append(f"{label}: the checker ran longer than {CHECKER_TIMEOUT_S} s")
            else:
                killed += 1
            alive = book.run(ALIVE, CHECKER_TIMEOUT_S)
            if "kernel alive" not in alive.text:
                problems.append(f"{label}: the kernel did not run the next cell: {alive.text[-400:]}")
        tried = len(made) - len(listed) + len(stale)  # a stale listing hides no mutant
        print(  # -rP shows it: the figures of the exercise's table
            f"Exercise {ex_id}: wrong answers rejected {rejected}/{hand} by hand, {killed}/{tried} mutants; "
            f"right answers accepted {accepted}/{len(rights)}, equivalent mutants {len(listed)}"
        )
        return problems


class EachCellTwice(pytest.Item):
    """A third pass: every code cell twice in a row (a learner re-runs a cell, red or green, by reflex).

    Only cells tagged raises-exception may fail, on either run. What the cells show is not compared:
    a repeated cell may rightly change what a later one shows (04 shows the ROLLBACK a rerun sends)."""

    parent: CourseBook

    def runtest(self) -> None:
        book = self.parent
        timeout = self.config.option.nbval_cell_timeout
        problems = []
        start = book.log_offset()
        if start is not None:  # the budget is a Run All's: a cell run twice may rightly leave a pool behind
            book.uncounted_spans.append((start, 2**62))
        for index, cell in enumerate(book.committed_cells):
            if cell.cell_type != "code":
                continue
            for attempt in ("first", "second"):
                ran = book.run(cell.source, timeout)
                if ran.failed and RAISES not in tags(cell):
                    problems.append(f"{_where(index, cell)} failed on its {attempt} run: {ran.text[-800:]}")
        assert not problems, "\n".join(problems)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name}: each cell twice"


class ConnectionBudget(pytest.Item):
    """The most connections the notebook's kernel had open at once over both Run Alls and the model answers
    (the wrong answers and the each-cell-twice pass are left out)."""

    parent: CourseBook

    def runtest(self) -> None:
        from coursedb import room

        bench = workbench()
        if bench.log is None:
            pytest.skip("connections are counted on the embedded backend (COURSEDB_BACKEND=auto or embedded)")
        text = bench.log.read_bytes()[self.parent.log_start :].decode(errors="replace")
        family = self.parent.family
        peaks = room.connection_peaks(
            text, lambda db, app: "kernel" if family.owns(db, app) else None, skipped=self.parent.uncounted_spans
        )
        assert peaks.groups.get("kernel"), "the server logged no session of this kernel: the count would prove nothing"
        assert peaks.refused == 0, "the server refused a connection"
        most, peak_at = peaks.groups["kernel"], peaks.groups_peak_at["kernel"]
        (notebook,) = iter_notebooks([self.path.stem])
        budget = room.BUDGET if notebook.facts.connections is None else notebook.facts.connections
        print(f"{self.path.stem}: at most {most} connections at once (budget {budget})")  # -rP shows it
        during = [code for at, code in self.parent.cells_run if at <= peak_at][-1:] or ["the first Run All"]
        assert most <= budget, (
            f"{self.path.stem} had {most} connections open at once (first while running {during[0][:300]!r}); "
            f"the room budget is {budget} per learner"
        )

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name}: connection budget"
