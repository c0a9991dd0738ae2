"""Every entry of the wrong-answer catalogue (tests/course/wrong_answers/) is rejected by its checker.

One kernel per notebook: the setup cell and the cells the exercises need (found by the names the
stub, solution, checker and wrong answers use) run once; then, for every entry, the entry replaces
the exercise cell, the checker runs (30 s at most), and a one-line cell proves the kernel still
answers. The checker must fail, and its output must contain the entry's hint: the words that point
the learner at that mistake. Last, the solution runs with the same checker and must pass, which
proves the rejections come from the answers and not from a kernel the harness left half-prepared.
"""

from __future__ import annotations

import ast
import re
import symtable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError

from tests.course.wrong_answers import WrongAnswer, load

ROOT = Path(__file__).resolve().parents[2]
CHECKER_TIMEOUT = 30  # seconds; the bound for one checker run
PRELUDE_TIMEOUT = 300
ALIVE = "print('kernel alive')"


# --- the notebook model -------------------------------------------------------------------------


@dataclass
class Exercise:
    key: str
    stub: str
    solution: str
    checker: str
    position: int  # index of the stub among the notebook's cells


def notebooks() -> list:
    from coursebook import iter_notebooks

    return list(iter_notebooks())


def exercises_of(notebook) -> tuple[list[nbformat.NotebookNode], list[Exercise]]:
    """The notebook's source cells (solutions included) and its exercises in order."""
    cells = notebook.cells
    found = [
        Exercise(key, cells[e.stub].source, cells[e.solution].source, cells[e.checker].source, e.stub)
        for key, e in notebook.exercises.items()
    ]
    return cells, sorted(found, key=lambda e: e.position)


def tags(cell) -> set[str]:
    return set(cell.metadata.get("tags", []))


# --- which cells an exercise needs --------------------------------------------------------------


def python_of(source: str) -> str:
    """Cell source without IPython magics (a %%ipytest cell is otherwise plain Python)."""
    return "\n".join("" if line.lstrip().startswith("%") else line for line in source.splitlines())


class _Plain(ast.NodeTransformer):
    """Top-level await is fine in a kernel, not in symtable: drop the awaits, keep the names."""

    def visit_Await(self, node: ast.Await) -> ast.AST:
        return self.visit(node.value)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> ast.AST:
        return self.visit(ast.With(items=node.items, body=node.body, type_comments=None))

    def visit_AsyncFor(self, node: ast.AsyncFor) -> ast.AST:
        return self.visit(ast.For(target=node.target, iter=node.iter, body=node.body, orelse=node.orelse))


def _tree(source: str) -> ast.Module:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile(python_of(source), "<cell>", "exec", flags=flags)


def defines_and_uses(source: str) -> tuple[set[str], set[str]]:
    """Global names a cell binds, and global names it reads (fixture parameters included)."""
    tree = _tree(source)
    plain = ast.fix_missing_locations(_Plain().visit(tree))
    table = symtable.symtable(ast.unparse(plain), "<cell>", "exec")
    defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    used = {s.get_name() for s in table.get_symbols() if s.is_referenced()} - defined
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        stack.extend(child.get_children())
        used |= {s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced()}
    for node in ast.walk(tree):  # pytest injects fixtures by parameter name
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
            node.name.startswith("test") or any("fixture" in ast.unparse(d) for d in node.decorator_list)
        ):
            used |= {a.arg for a in node.args.args}
    return defined, used - defined


def needed_cells(cells, exercise: Exercise, extra_sources: list[str]) -> list[int]:
    """Indexes of the code cells before the exercise that define what it needs, transitively."""
    candidates = [
        i
        for i, cell in enumerate(cells[: exercise.position])
        if cell.cell_type == "code"
        and not tags(cell) & {"raises-exception", "exercise", "solution", "checker"}
        and not cell.source.lstrip().startswith("%%")
    ]
    info = {i: defines_and_uses(cells[i].source) for i in candidates}
    wanted = set()
    for source in [exercise.stub, exercise.solution, exercise.checker, *extra_sources]:
        wanted |= defines_and_uses(source)[1]
    chosen = {candidates[0]}  # the setup cell
    wanted |= info[candidates[0]][1]
    while True:
        more = {i for i in candidates if i not in chosen and info[i][0] & wanted}
        if not more:
            return sorted(chosen)
        chosen |= more
        for i in more:
            wanted |= info[i][1]


def function_name(stub: str) -> str:
    for node in _tree(stub).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node.name
    raise AssertionError(f"no function in the exercise cell:\n{stub}")


def with_imports_of(stub: str, answer_source: str) -> str:
    """A replacement exercise cell keeps the stub's own imports (the learner edits below them)."""
    source = python_of(stub)
    imports = [
        ast.get_source_segment(source, node)
        for node in _tree(stub).body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return "\n".join([*imports, answer_source])


# --- running cells in one kernel ----------------------------------------------------------------


class Kernel:
    def __init__(self, workdir: Path) -> None:
        self.nb = nbformat.v4.new_notebook()
        self.client = NotebookClient(
            self.nb,
            timeout=PRELUDE_TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
            allow_errors=True,
            interrupt_on_timeout=True,
        )

    def run(self, source: str, timeout: int) -> tuple[bool, str]:
        """(failed, text of every output) for one cell; a timeout counts as a failure."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.timeout = timeout
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        except CellTimeoutError:
            return True, f"TIMEOUT: the cell ran longer than {timeout} s"
        text = []
        failed = False
        for output in cell.outputs:
            if output.output_type == "error":
                failed = True
                text += [output.ename, output.evalue, *output.traceback]
            elif output.output_type == "stream":
                text.append(output.text)
            else:
                text.append(output.get("data", {}).get("text/plain", ""))
        return failed, _plain("\n".join(text))


def _plain(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # ANSI colours in tracebacks
    return re.sub(r"\s+", " ", text)


# --- the test -----------------------------------------------------------------------------------


def _cases() -> list:
    catalogue = load()
    return [pytest.param(nb, id=nb.stem) for nb in notebooks() if set(nb.exercises) & set(catalogue)]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("notebook", _cases())
def test_every_wrong_answer_is_rejected_with_its_hint(notebook):
    catalogue = load()
    cells, exercises = exercises_of(notebook)
    problems: list[str] = []
    for exercise in exercises:
        entries = catalogue.get(exercise.key, [])
        if len(entries) < 3:
            problems.append(f"Exercise {exercise.key}: {len(entries)} catalogue entries, at least 3 expected")

    kernel = Kernel(notebook.book_path.parent)  # where the book runs
    with kernel.client.setup_kernel():
        prelude = set()
        for exercise in exercises:
            target = function_name(exercise.stub)
            sources = [e.cell_source(target) for e in catalogue.get(exercise.key, [])]
            prelude |= set(needed_cells(cells, exercise, sources))
        for index in sorted(prelude):
            failed, text = kernel.run(cells[index].source, PRELUDE_TIMEOUT)
            assert not failed, f"{notebook.stem}: prelude cell {index} failed: {text[-2000:]}"

        for exercise in exercises:
            target = function_name(exercise.stub)
            entries = catalogue.get(exercise.key, [])
            found = [p for entry in entries for p in check_entry(kernel, exercise, entry, target)]
            print(f"Exercise {exercise.key}: {len(entries)} wrong answers, {len(found)} problems")  # -rP shows it
            problems += found
            failed, text = kernel.run(exercise.solution, CHECKER_TIMEOUT)
            assert not failed, f"Exercise {exercise.key}: the solution cell failed: {text[-2000:]}"
            failed, text = kernel.run(exercise.checker, CHECKER_TIMEOUT)
            if failed:
                problems.append(f"Exercise {exercise.key}: the solution fails its checker here: {text[:1500]}")

    assert not problems, "\n".join(problems)


def check_entry(kernel: Kernel, exercise: Exercise, entry: WrongAnswer, target: str) -> list[str]:
    label = f"Exercise {exercise.key}, wrong answer {entry.name} ({entry.mistake})"
    failed, text = kernel.run(with_imports_of(exercise.stub, entry.cell_source(target)), CHECKER_TIMEOUT)
    if failed:
        return [f"{label}: the answer cell itself failed: {text[-1000:]}"]
    problems = []
    failed, text = kernel.run(exercise.checker, CHECKER_TIMEOUT)
    if not failed:
        problems.append(f"{label}: ACCEPTED by the checker")
    elif text.startswith("TIMEOUT"):
        problems.append(f"{label}: {text}")
    elif _plain(entry.hint) not in text:
        problems.append(f"{label}: rejected, but the output lacks the hint {entry.hint!r}: {text[:1200]}")
    alive_failed, alive_text = kernel.run(ALIVE, CHECKER_TIMEOUT)
    if alive_failed or "kernel alive" not in alive_text:
        problems.append(f"{label}: the kernel did not run the next cell: {alive_text[-500:]}")
    return problems


# --- hints reveal step by step ------------------------------------------------------------------

HINTED = ("00", "01", "02", "03", "04", "05", "06", "07")  # notebooks 08+ are written by nb2 (issue 14)
ALL_NOTEBOOKS = notebooks()


def _stub_message(stub: str) -> str:
    """The text of the stub's NotImplementedError."""
    for node in ast.walk(_tree(stub)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            return " ".join(n.value for n in ast.walk(node.exc.args[0]) if isinstance(n, ast.Constant))
    return ""


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=lambda n: n.stem)
def test_stub_messages_nudge_without_giving_the_answer(notebook):
    """The error a learner sees first is a nudge: it shares no phrase of 20 characters with the model answer."""
    from difflib import SequenceMatcher

    for key, exercise in notebook.exercises.items():
        message = " ".join(_stub_message(notebook.cells[exercise.stub].source).split())
        assert f"Exercise {key}" in message, f"Exercise {key}: the stub's NotImplementedError must name the exercise"
        solution = " ".join(notebook.cells[exercise.solution].source.split())
        match = SequenceMatcher(None, message, solution, autojunk=False).find_longest_match()
        shared = message[match.a : match.a + match.size]
        assert match.size < 20, f"Exercise {key}: the stub's message gives away the answer: {shared!r}"


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=lambda n: n.stem)
def test_hints_are_collapsed_and_come_in_steps(notebook):
    """Fuller help only when the learner asks: every hint is a collapsed <details>, opened one at a time."""
    for key, exercise in notebook.exercises.items():
        if notebook.stem.startswith(HINTED):
            assert exercise.hints, f"Exercise {key} has no hint cell"
        for index in exercise.hints:
            text = notebook.cells[index].source
            assert notebook.cells[index].cell_type == "markdown", f"Exercise {key}: hint cell {index} is not markdown"
            steps = text.count("<details>")
            assert steps >= 1 and steps == text.count("</details>"), f"Exercise {key}: hint {index} is not collapsed"
            outside = re.sub(r"<details>.*?</details>", "", text, flags=re.DOTALL).strip()
            assert not outside, f"Exercise {key}: hint cell {index} shows text outside <details>: {outside[:80]!r}"
