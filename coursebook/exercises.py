"""Every static rule an exercise must meet, in one place: the tests, the notebook run and
``python3 course.py check`` all ask ``problems(notebook)``; docs/maintainers.md's recipe lists them.

An exercise is three cells of a notebook's source tied by their ``exercise="N.M"`` key (a stub the
learner edits, the model answer tagged ``solution``, a ``%%ipytest`` checker), hint cells, and its
entries in the notebook's answer catalogue (notebooks/answers/). Each rule below says in one
sentence what is wrong; a rule a notebook does not meet yet is listed in PENDING, in the open.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from coursebook.answers import Catalogue, cell_tree
from coursebook.cells import RAISES, tags
from coursebook.model import Exercise, Notebook, find_exercises

MIN_WRONG = 3  # wrong answers per exercise in the catalogue
MIN_RIGHT = 2  # right answers, written differently from the model answer
MAX_SHARED = 20  # characters the stub's message may share with the model answer, in one run
MIN_HINT_STEPS = 2  # a nudge first, then fuller steps

# Rules that notebooks do not meet YET, by rule and notebook number: the one list of known gaps.
# Whoever makes a rule hold for a notebook removes it here (a test fails while an entry is no longer needed).
# Empty: every notebook meets every rule (08-10's hints and 06-10's right answers have landed).
PENDING: dict[str, set[str]] = {}


@dataclass(frozen=True)
class Problem:
    """One broken rule: where, which rule, and what to do, in one sentence."""

    where: str  # "Exercise 3.2" or the notebook's stem
    rule: str
    sentence: str

    def __str__(self) -> str:
        return f"{self.where}: {self.sentence} [{self.rule}]"


@dataclass(frozen=True)
class Context:
    """What the rules look at for one exercise."""

    id: str
    exercise: Exercise
    cells: list[Any]
    catalogue: Catalogue

    def source(self, index: int | None) -> str:
        return "" if index is None else self.cells[index].source

    @property
    def stub_message(self) -> str | None:
        """The text of the stub's ``raise NotImplementedError("...")``; None if it raises no such thing."""
        try:
            tree = cell_tree(self.source(self.exercise.stub))
        except SyntaxError:
            return None
        for node in ast.walk(tree):
            call = node.exc if isinstance(node, ast.Raise) else None
            if isinstance(call, ast.Call) and call.args and getattr(call.func, "id", "") == "NotImplementedError":
                parts = [n.value for n in ast.walk(call.args[0]) if isinstance(n, ast.Constant)]
                return " ".join(" ".join(str(p) for p in parts).split())
        return None


Rule = Callable[[Context], str | None]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        RULES[name] = function
        return function

    return register


@rule("cells")
def _cells(ex: Context) -> str | None:
    e = ex.exercise
    if e.solution is None or e.checker is None:
        missing = " and ".join(n for n, i in (("solution", e.solution), ("checker", e.checker)) if i is None)
        return f"add the {missing} cell (tagged {missing!r}, exercise={ex.id!r})"
    if not e.stub < e.solution < e.checker:
        return "keep the stub, the solution and the checker in this order"
    return None


@rule("checker")
def _checker(ex: Context) -> str | None:
    if ex.exercise.checker is None:
        return None  # "cells" says so
    cell = ex.cells[ex.exercise.checker]
    if not cell.source.lstrip().startswith("%%ipytest"):
        return "the checker runs real tests: start it with %%ipytest"
    try:
        magic = shlex.split(cell.source.lstrip().splitlines()[0])
    except ValueError:  # an unclosed quote: the kernel could not read it either
        magic = []
    at = magic.index("--exercise") + 1 if "--exercise" in magic else len(magic)
    if magic[at : at + 1] != [ex.id]:
        # The kernel sees no cell tags: this option is how it knows which exercise a run's outcome is for.
        return f"start the checker with %%ipytest --exercise {ex.id}"
    if RAISES not in tags(cell):
        return f"the checker fails on the stub, so tag it {RAISES!r}"
    return None


@rule("stub raises")
def _stub_raises(ex: Context) -> str | None:
    message = ex.stub_message
    if message is None or not message.startswith(f"Exercise {ex.id}: "):
        return f'the stub must raise NotImplementedError("Exercise {ex.id}: <a nudge>")'
    return None


@rule("stub gives away")
def _stub_gives_away(ex: Context) -> str | None:
    message, solution = ex.stub_message or "", " ".join(ex.source(ex.exercise.solution).split())
    match = SequenceMatcher(None, message, solution, autojunk=False).find_longest_match()
    if match.size >= MAX_SHARED:
        shared = message[match.a : match.a + match.size]
        return f"the stub's message gives away the answer ({shared!r}): nudge, name the goal, not the code"
    return None


@rule("hints")
def _hints(ex: Context) -> str | None:
    if not ex.exercise.hints:
        return f'add a Markdown cell tagged "hint", exercise={ex.id!r}, after the checker'
    return None


HINT_STEP = re.compile(r"<details>\s*<summary>Hint (\d+)</summary>.*?</details>", re.DOTALL)


@rule("hint format")
def _hint_format(ex: Context) -> str | None:
    if not ex.exercise.hints:
        return None  # "hints" says so
    steps: list[int] = []
    for index in ex.exercise.hints:
        cell = ex.cells[index]
        if cell.cell_type != "markdown":
            return f"hint cell {index} must be Markdown"
        outside = HINT_STEP.sub("", cell.source).strip()
        if outside:
            return f"hint cell {index} shows text outside its <details>: {outside[:60]!r}"
        steps += [int(n) for n in HINT_STEP.findall(cell.source)]
    if steps != list(range(1, len(steps) + 1)) or len(steps) < MIN_HINT_STEPS:
        return (
            f"give at least {MIN_HINT_STEPS} collapsed steps, a nudge first: "
            "<details><summary>Hint 1</summary> ... </details>, then Hint 2, ..."
        )
    return None


def _enough(kind: str, found: int, least: int, decorator: str) -> str | None:
    if found < least:
        return f"{found} {kind} answers in the catalogue, at least {least} expected ({decorator})"
    return None


@rule("wrong answers")
def _wrong_answers(ex: Context) -> str | None:
    return _enough("wrong", len(ex.catalogue.wrong(ex.id)), MIN_WRONG, f"@wrong({ex.id!r}, hint=...)")


@rule("right answers")
def _right_answers(ex: Context) -> str | None:
    return _enough("right", len(ex.catalogue.right(ex.id)), MIN_RIGHT, f"@right({ex.id!r})")


def check(cells: list[Any], catalogue: Catalogue, where: str, pending: set[str] = frozenset()) -> list[Problem]:
    """Every rule on every exercise of ``cells`` (a source's cells, solutions included), except the
    rules in ``pending``; and the catalogue holds only entries for these exercises."""
    try:
        exercises = find_exercises(cells)
    except ValueError as exc:
        return [Problem(where, "tags", str(exc))]
    if not exercises:
        return [Problem(where, "exercises", "a notebook ends with at least one exercise: see docs/maintainers.md")]
    found = []
    for ex_id, exercise in exercises.items():
        context = Context(ex_id, exercise, cells, catalogue)
        for name, function in RULES.items():
            sentence = None if name in pending else function(context)
            if sentence:
                found.append(Problem(f"Exercise {ex_id}", name, sentence))
    for stray in sorted(catalogue.exercises - set(exercises)):
        found.append(Problem(where, "catalogue", f"the answer catalogue has entries for Exercise {stray}, not here"))
    return found


def pending_for(notebook: Notebook) -> set[str]:
    return {name for name, numbers in PENDING.items() if notebook.stem[:2] in numbers}


def problems(notebook: Notebook) -> list[Problem]:
    """The notebook's header, and its exercises against every rule not PENDING for it."""
    from coursebook import answers
    from coursedb import room

    try:
        stated = notebook.facts.connections
    except ValueError as exc:
        return [Problem(notebook.stem, "header", str(exc))]
    if stated is not None and stated > room.MAX_NOTEBOOK_BUDGET:
        allowed = f"coursedb.room.MAX_NOTEBOOK_BUDGET, {room.MAX_NOTEBOOK_BUDGET}"
        return [Problem(notebook.stem, "header", f"connections: {stated} is more than a role allows ({allowed})")]
    return check(notebook.cells, answers.for_notebook(notebook), notebook.stem, pending_for(notebook))


def needlessly_pending(notebook: Notebook) -> list[str]:
    """PENDING entries for this notebook whose rule now holds: remove them."""
    from coursebook import answers

    held = {p.rule for p in check(notebook.cells, answers.for_notebook(notebook), notebook.stem)}
    return [name for name in pending_for(notebook) if name not in held]
