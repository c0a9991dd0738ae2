"""The items each notebook adds after nbval's own cells, in this order, on the same kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from coursebook.cells import RAISES, tags
from coursebook.model import find_exercises
from coursebook.run.book import Book, NotebookProblems, report, where
from coursebook.run.checks import CHECKS, ExerciseRun


class CourseBook(Book):
    """The notebook of the run: nbval's cells (strict nbval), then the items of ITEMS, on one kernel."""

    def collect(self):
        yield from super().collect()
        for kind in ITEMS:
            item = kind.from_parent(self, name=kind.label)
            if kind.timeout_s is not None:
                item.add_marker(pytest.mark.timeout(kind.timeout_s))
            yield item


class BookItem(pytest.Item):
    """An item of a CourseBook: named after what it checks, failing with its problems, one a line."""

    label = ""
    timeout_s: int | None = None  # pytest-timeout's limit for the item, if not the suite's
    parent: Book

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name}: {self.label}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):
        return report(self, excinfo) or super().repr_failure(excinfo, style=style)


class RunAllAgain(BookItem):
    """The second Run All in the same kernel: every code cell again, every check of checks.CHECKS."""

    label = "Run All again"
    timeout_s = 900  # every wrong answer, right answer and mutant runs the checker once: far more than one Run All

    def runtest(self) -> None:
        book = self.parent
        if not book.kernel.is_alive():
            raise NotebookProblems(["the kernel died during the first Run All"])
        checks = [check(book) for check in CHECKS]
        exercises = find_exercises(book.committed_cells)
        checker_of = {ex.checker: ex_id for ex_id, ex in exercises.items()}
        problems: list[str] = []
        with book.older_objects_frozen():  # what the first Run All made; the pass's own objects are collected
            for index, cell in book.code_cells():
                ran = book.run(cell.source, timeout=self.config.option.nbval_cell_timeout)
                for check in checks:
                    problems += check.cell(index, cell, ran)
                if index in checker_of:
                    ex = ExerciseRun.at(book, checker_of[index], exercises[checker_of[index]])
                    for check in checks:
                        problems += check.exercise(ex)
                    ex.run(ex.stub)  # the stub back in place, as the committed notebook has it
        for check in checks:
            problems += check.end()
        if problems:
            raise NotebookProblems(problems)


class EachCellTwice(BookItem):
    """A third pass: every code cell twice in a row (a learner re-runs a cell, red or green, by reflex).

    Only cells tagged raises-exception may fail, on either run. What the cells show is not compared:
    a repeated cell may rightly change what a later one shows (04 shows the ROLLBACK a rerun sends)."""

    label = "each cell twice"

    def runtest(self) -> None:
        book = self.parent
        start = book.log_offset()
        if start is not None:  # the budget is a Run All's: a cell run twice may rightly leave a pool behind
            book.uncounted_spans.append((start, 2**62))
        problems = []
        with book.older_objects_frozen():
            for index, cell in book.code_cells():
                for attempt in ("first", "second"):
                    ran = book.run(cell.source, self.config.option.nbval_cell_timeout)
                    if ran.failed and RAISES not in tags(cell):
                        problems.append(f"{where(index, cell)} failed on its {attempt} run: {ran.text[-800:]}")
        if problems:
            raise NotebookProblems(problems)


class ConnectionBudget(BookItem):
    """The most connections the notebook's kernel had open at once over both Run Alls and the model
    answers (the catalogue's answers and the each-cell-twice pass are left out), against the budget."""

    label = "connection budget"

    def runtest(self) -> None:
        from coursedb import room

        book = self.parent
        log = book.workbench.log
        if log is None:
            pytest.skip("connections are counted on the embedded backend (COURSEDB_BACKEND=auto or embedded)")
        text = log.read_bytes()[book.log_start :].decode(errors="replace")
        peaks = room.connection_peaks(
            text, lambda db, app: "kernel" if book.family.owns(db, app) else None, skipped=book.uncounted_spans
        )
        if not peaks.groups.get("kernel"):
            raise NotebookProblems(["the server logged no session of this kernel: the count would prove nothing"])
        if peaks.refused:
            raise NotebookProblems([f"the server refused {peaks.refused} connection(s)"])
        most, peak_at = peaks.groups["kernel"], peaks.groups_peak_at["kernel"]
        stated = book.notebook.facts.connections
        budget = room.BUDGET if stated is None else stated
        print(f"{self.path.stem}: at most {most} connections at once (budget {budget})")  # -rP shows it
        during = [code for at, code in book.cells_run if at <= peak_at][-1:] or ["the first Run All"]
        if most > budget:
            raise NotebookProblems([
                f"{self.path.stem} had {most} connections open at once (first while running {during[0][:300]!r}); "
                f"the room budget is {budget} per learner"
            ])  # fmt: skip


ITEMS: list[type[BookItem]] = [RunAllAgain, EachCellTwice, ConnectionBudget]
