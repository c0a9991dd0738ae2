"""What the second Run All proves, one small class each.

The pass (items.RunAllAgain) runs every code cell of the committed notebook again in the same kernel
and asks each check, in the order of CHECKS:

- ``cell(index, cell, ran)`` after each code cell ran;
- ``exercise(ex)`` at each checker, while the untouched stub is in place (the pass puts it back after);
- ``end()`` after the last cell.

Each returns the problems it found, one sentence each. A new check is one subclass of Check
appended to CHECKS; an answer it puts in place of the stub goes through ``ex.try_answer``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from coursebook import answers, exercises, limits
from coursebook.cells import PROGRESS, RAISES, tags
from coursebook.model import Exercise, find_exercises
from coursebook.run.book import Book, Ran, where

CHECKER_TIMEOUT_S = 30  # one checker run, as a learner waits for it on an idle machine (stretched with the load)
# gc: a never-awaited coroutine of an answer warns now, not as an error inside the next checker's tests
ALIVE = "import gc; gc.collect(); print('kernel alive')"


def to_first_failure(checker: str) -> str:
    """The checker cell with pytest's ``-x``: it stops at its first failed test. Enough to reject an answer;
    whatever that run shows, the whole checker shows too (its first failure comes first, the same)."""
    first, newline, rest = checker.partition("\n")
    magic, *args = first.split(maxsplit=1)
    return " ".join([magic, "-x", *args]) + newline + rest if magic == "%%ipytest" else checker


@dataclass
class ExerciseRun:
    """One exercise, met at its checker during the second Run All, and the means to try answers on it."""

    id: str
    book: Book
    stub: str
    checker: str
    solution: str
    tally: dict[str, int] = field(default_factory=dict)  # what the checks counted, for the exercise's line

    @classmethod
    def at(cls, book: Book, ex_id: str, exercise: Exercise) -> ExerciseRun:
        """The exercise whose checker is the book's cell ``exercise.checker``; its solution from the source."""
        source = book.notebook
        solution = source.cells[source.exercises[ex_id].solution].source
        cells = book.committed_cells
        return cls(ex_id, book, cells[exercise.stub].source, cells[exercise.checker].source, solution)

    @functools.cached_property
    def catalogue(self) -> answers.Catalogue:
        return answers.for_notebook(self.book.notebook)

    @functools.cached_property
    def target(self) -> str:
        """The name of the function the stub asks for: an answer's function is renamed to it."""
        return answers.function_name(self.stub)

    @functools.cached_property
    def checker_to_first_failure(self) -> str:
        return to_first_failure(self.checker)

    def run(self, code: str) -> Ran:
        return self.book.run(code, limits.scaled(CHECKER_TIMEOUT_S))

    def try_answer(self, entry: answers.Answer, to_first_failure: bool = False) -> tuple[Ran, Ran | None]:
        """Put a catalogue entry in place of the stub, then run the checker (to its first failed test only, if
        asked): (answer cell, checker or None if the answer cell itself failed)."""
        answer = self.run(answers.with_imports_of(self.stub, entry.cell_source(self.target)))
        checker = self.checker_to_first_failure if to_first_failure else self.checker
        return answer, (None if answer.failed else self.run(checker))

    @contextlib.contextmanager
    def uncounted(self) -> Iterator[None]:
        """Answers that are not the course's own code may open what they like: the budget leaves them out."""
        start = self.book.log_offset()
        try:
            yield
        finally:
            if start is not None:
                self.book.uncounted_spans.append((start, self.book.log_offset()))

    def kernel_answers(self) -> str | None:
        """None if the kernel still runs the next cell, else what it said."""
        alive = self.run(ALIVE)
        return None if "kernel alive" in alive.text else alive.text[-400:]


class Check:
    """One thing the second Run All proves; override what it needs."""

    def __init__(self, book: Book) -> None:
        self.book = book

    def cell(self, index: int, cell: Any, ran: Ran) -> Iterable[str]:
        return ()

    def exercise(self, ex: ExerciseRun) -> Iterable[str]:
        return ()

    def end(self) -> Iterable[str]:
        return ()


class CellsShowTheSame(Check):
    """Every code cell runs again and shows what the committed notebook shows (only raises-exception
    cells may fail; of those, the error is compared). Exercise cells are left to the other checks, and
    the progress cell to ProgressShowsTheRun (it shows this run's checker runs, as it should)."""

    def __init__(self, book: Book) -> None:
        super().__init__(book)
        exercises = find_exercises(book.committed_cells)
        self.in_exercise = {i for ex in exercises.values() for i in (ex.stub, ex.checker, *ex.hints)}
        self.compare = not book.config.option.nbval_lax

    def cell(self, index: int, cell: Any, ran: Ran) -> Iterable[str]:
        allowed = RAISES in tags(cell)
        if ran.failed and not allowed:
            yield f"{where(index, cell)} failed on Run All again: {ran.text[-800:]}"
        elif PROGRESS in tags(cell):
            return
        elif self.compare and index not in self.in_exercise and self.differs(ran, cell, allowed):
            yield f"{where(index, cell)} shows something else on Run All again: {ran.text[-800:]}"

    def differs(self, ran: Ran, cell: Any, failing: bool) -> bool:
        return self.book.visible(ran, failing) != self.book.visible(cell, failing)


class StubFails(Check):
    """The checker fails on the untouched stub, with a message naming the exercise."""

    def exercise(self, ex: ExerciseRun) -> Iterable[str]:
        verdict = ex.run(ex.checker_to_first_failure)
        if not verdict.failed or f"Exercise {ex.id}" not in verdict.text:
            yield f"Exercise {ex.id}: the checker must fail on the untouched stub with a hint naming it"


class WrongAnswersRejected(Check):
    """Every wrong answer of the catalogue fails the checker with its hint, in time, and the kernel lives on.

    The checker runs to its first failed test; only if the hint is not in that run's report does the whole
    checker run again (the hint may be a later test's), and its report is the verdict, as a learner sees it."""

    def exercise(self, ex: ExerciseRun) -> Iterable[str]:
        entries = ex.catalogue.wrong(ex.id)
        with ex.uncounted():
            found = [list(self.one(ex, entry)) for entry in entries]
        ex.tally.update(hand=len(entries), rejected=sum(not problems for problems in found))
        return [problem for problems in found for problem in problems]

    def one(self, ex: ExerciseRun, entry: answers.WrongAnswer) -> Iterator[str]:
        label = f"Exercise {ex.id}, wrong answer {entry.name} ({entry.description})"
        hint = " ".join(entry.hint.split())
        answer, verdict = ex.try_answer(entry, to_first_failure=True)
        if verdict is None:
            yield f"{label}: the answer cell itself failed: {answer.text[-800:]}"
            return
        if verdict.failed and not verdict.timed_out and hint not in verdict.text:
            verdict = ex.run(ex.checker)
            ex.tally["hint_later"] = ex.tally.get("hint_later", 0) + 1
        if not verdict.failed:
            yield f"{label}: ACCEPTED by the checker"
        elif verdict.timed_out:
            yield f"{label}: the checker ran longer than {CHECKER_TIMEOUT_S} s, stretched for {limits.describe()}"
        elif hint not in verdict.text:
            yield f"{label}: rejected, but without the hint {entry.hint!r}: {verdict.text[:1000]}"
        if (said := ex.kernel_answers()) is not None:
            yield f"{label}: the kernel did not run the next cell: {said}"


class RightAnswersAccepted(Check):
    """Every right answer of the catalogue (written another way than the model) passes the checker."""

    def exercise(self, ex: ExerciseRun) -> Iterable[str]:
        rights, problems = ex.catalogue.right(ex.id), []
        with ex.uncounted():
            for entry in rights:
                answer, verdict = ex.try_answer(entry)
                if verdict is None or verdict.failed or "passed" not in verdict.text:
                    said = (answer.text + (verdict.text if verdict else ""))[-1500:]
                    problems.append(f"Exercise {ex.id}, right answer {entry.name} ({entry.description}): REJECTED "
                                    f"by the checker: {said}")  # fmt: skip
        ex.tally.update(rights=len(rights), accepted=len(rights) - len(problems))
        return problems


class MutantsRejected(Check):
    """Every mutant of the model answer (coursebook/mutants.py) fails the checker, unless the catalogue
    lists it as equivalent; a listing must name a mutant that is made."""

    def exercise(self, ex: ExerciseRun) -> Iterable[str]:
        from coursebook import mutants

        _ = ex.catalogue  # loading the catalogue lists its equivalent mutants
        made = mutants.mutants(ex.id, ex.solution)
        listed = {name for (exercise, name) in mutants.EQUIVALENT if exercise == ex.id}
        stale = sorted(listed - {mutant.name for mutant in made})
        listings = [f"Exercise {ex.id}: {name!r} is listed as equivalent, but no such mutant is made" for name in stale]
        tried = [mutant for mutant in made if mutant.name not in listed]
        with ex.uncounted():
            found = [list(self.one(ex, mutant)) for mutant in tried]
        killed = sum(not problems for problems in found)
        ex.tally.update(tried=len(tried) + len(stale), killed=killed, equivalent=len(listed))
        return listings + [problem for problems in found for problem in problems]

    def one(self, ex: ExerciseRun, mutant: Any) -> Iterator[str]:
        label = f"Exercise {ex.id}, mutant {mutant.name!r}"
        answer = ex.run(mutant.source)
        verdict = answer if answer.failed else ex.run(ex.checker_to_first_failure)
        if not verdict.failed:
            yield f"{label} SURVIVED: the checker accepts it (if it is equivalent, list it, with why)"
        elif verdict.timed_out:
            yield f"{label}: the checker ran longer than {CHECKER_TIMEOUT_S} s, stretched for {limits.describe()}"
        if (said := ex.kernel_answers()) is not None:
            yield f"{label}: the kernel did not run the next cell: {said}"


class Tally(Check):
    """One line per exercise with what the answer checks counted (``-rP`` shows it: the exercises' table)."""

    def exercise(self, ex: ExerciseRun) -> Iterable[str]:
        t = ex.tally
        print(
            f"Exercise {ex.id}: wrong answers rejected {t.get('rejected', 0)}/{t.get('hand', 0)} by hand, "
            f"{t.get('killed', 0)}/{t.get('tried', 0)} mutants; right answers accepted "
            f"{t.get('accepted', 0)}/{t.get('rights', 0)}, equivalent mutants {t.get('equivalent', 0)}; "
            f"hints only past the first failed test {t.get('hint_later', 0)}"
        )
        return ()


class ModelAnswerPasses(Check):
    """The model answer (the source's ``solution`` cell) passes the checker."""

    def exercise(self, ex: ExerciseRun) -> Iterable[str]:
        answer = ex.run(ex.solution)
        verdict = ex.run(ex.checker)
        if answer.failed or verdict.failed or "passed" not in verdict.text:
            yield f"Exercise {ex.id}: the model answer does not pass its checker: {verdict.text[:1000]}"


class ExerciseRules(Check):
    """The static rules every exercise meets (coursebook/exercises.py), so one notebook's run says them too."""

    def end(self) -> Iterable[str]:
        return [str(problem) for problem in exercises.problems(self.book.notebook)]


class ProgressShowsTheRun(Check):
    """The progress cell, met after every exercise's model answer passed its checker in this kernel, shows
    each of the notebook's exercises passed: every checker run was recorded (coursedb.progress), under
    its exercise, in the kernel's own store."""

    def cell(self, index: int, cell: Any, ran: Ran) -> Iterable[str]:
        if PROGRESS not in tags(cell):
            return
        count = len(find_exercises(self.book.committed_cells))
        head = f"{self.book.path.stem[:2]} · {self.book.notebook.title}: {count} of {count} exercises pass"
        if head not in ran.text:
            yield f"{where(index, cell)} does not show {head!r} after every model answer passed: {ran.text[-800:]}"


class ShowsOutsideTheRepository(Check):
    """What the notebook's header says it must (and must not) show, run from the learner copies."""

    def __init__(self, book: Book) -> None:
        super().__init__(book)
        self.shown: list[str] = []

    def cell(self, index: int, cell: Any, ran: Ran) -> Iterable[str]:
        self.shown += [str(out) for out in ran.outputs]
        return ()

    def end(self) -> Iterable[str]:
        text, facts, stem = "\n".join(self.shown), self.book.notebook.facts, self.book.path.stem
        yield from (f"{stem} does not show {s!r} outside the repository" for s in facts.must_show if s not in text)
        yield from (f"{stem} shows {s!r} outside the repository" for s in facts.must_not_show if s in text)


# In this order: at a checker, the stub's own verdict comes first and the model answer last.
CHECKS: list[type[Check]] = [
    CellsShowTheSame,
    StubFails,
    WrongAnswersRejected,
    RightAnswersAccepted,
    MutantsRejected,
    Tally,
    ModelAnswerPasses,
    ProgressShowsTheRun,
    ShowsOutsideTheRepository,
    ExerciseRules,
]
