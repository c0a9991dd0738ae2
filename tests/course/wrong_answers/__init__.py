"""The wrong-answer catalogue: answers learners really type, each of which its checker must reject.

Every ``NN_*.py`` file here holds the entries for one notebook, one function per entry:

    @wrong("1.1", hint="not only psycopg2 and asyncpg")
    def asyncpg_dsn_two_drivers(url: str) -> str:
        '''Strips the two drivers the learner knows of.'''
        return url.replace("+psycopg2", "").replace("+asyncpg", "")

The course's test command (coursebook/pytest_plugin.py) renames the function to the exercise's own name
(``asyncpg_dsn``), puts it in place of the exercise cell, runs the checker in a real kernel and
asserts that the checker fails and that its output contains ``hint``: the words that point the
learner at this mistake. The entries are real code, linted like the rest of the repository.
Names the notebook defines before the exercise are marked ``# noqa: F821``; imports at the top of
a catalogue file travel with the entries that use them.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class WrongAnswer:
    exercise: str  # "4.1"
    function: Callable = field(repr=False)
    hint: str  # text the checker's failure output must contain

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def mistake(self) -> str:
        """The entry's docstring: what the learner did."""
        return inspect.getdoc(self.function) or self.name

    def cell_source(self, target: str) -> str:
        """The entry as an exercise cell: the imports it uses, then the function renamed to ``target``."""
        source = textwrap.dedent(inspect.getsource(self.function))
        tree = ast.parse(source)
        definition = tree.body[0]
        lines = source.splitlines()
        kept = [
            ast.get_source_segment(source, decorator)
            for decorator in definition.decorator_list
            if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "wrong")
        ]
        body = lines[definition.lineno - 1 :]
        prefix = "async def " if isinstance(definition, ast.AsyncFunctionDef) else "def "
        assert body[0].startswith(prefix + self.name + "("), body[0]
        body[0] = prefix + target + body[0][len(prefix + self.name) :]
        imports = _imports_used(Path(self.function.__code__.co_filename), definition)
        parts = [*imports, *(f"@{d}" for d in kept), *body]
        return "\n".join(parts) + "\n"


CATALOGUE: dict[str, list[WrongAnswer]] = {}


def wrong(exercise: str, *, hint: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as a wrong answer to ``exercise``."""

    def register(function: Callable) -> Callable:
        # inspect.unwrap: a @pytest.fixture entry is wrapped, its source is the plain function's
        CATALOGUE.setdefault(exercise, []).append(WrongAnswer(exercise, inspect.unwrap(function), hint))
        return function

    return register


def _imports_used(module_path: Path, definition: ast.AST) -> list[str]:
    """The catalogue file's top-level import statements that bind a name the function uses."""
    used = {node.id for node in ast.walk(definition) if isinstance(node, ast.Name)}
    used |= {_root(node) for node in ast.walk(definition) if isinstance(node, ast.Attribute)}
    source = module_path.read_text()
    statements = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import | ast.ImportFrom) and not (
            isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("__future__", "tests"))
        ):
            bound = {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            if bound & used:
                statements.append(ast.get_source_segment(source, node))
    return statements


def _root(node: ast.AST) -> str:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def cell_tree(source: str) -> ast.Module:
    """A cell's syntax tree: magics blanked out, top-level await allowed (a kernel allows it)."""
    plain = "\n".join("" if line.lstrip().startswith("%") else line for line in source.splitlines())
    return compile(plain, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def function_name(stub: str) -> str:
    """The name of the function an exercise cell asks for."""
    for node in cell_tree(stub).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node.name
    raise AssertionError(f"no function in the exercise cell:\n{stub}")


def with_imports_of(stub: str, answer_source: str) -> str:
    """A replacement exercise cell keeps the stub's own imports (the learner edits below them)."""
    imports = [
        ast.get_source_segment(stub, node)
        for node in cell_tree(stub).body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return "\n".join([*imports, answer_source])


def load() -> dict[str, list[WrongAnswer]]:
    """Import every catalogue file once; return the entries by exercise id."""
    if not CATALOGUE:
        for path in sorted(HERE.glob("[0-9][0-9]_*.py")):
            spec = importlib.util.spec_from_file_location(f"wrong_answers_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    return CATALOGUE
