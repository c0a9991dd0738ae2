"""The answer catalogues: answers learners really write, wrong ones the checker must reject and right
ones (written differently from the model answer) it must accept.

Each notebook has one catalogue, ``notebooks/answers/NN_name.py`` (the notebook's own stem), one
function per entry:

    from coursebook.answers import right, wrong

    @wrong("1.1", hint="not only psycopg2 and asyncpg")
    def asyncpg_dsn_two_drivers(url: str) -> str:
        '''Strips the two drivers the learner knows of.'''
        return url.replace("+psycopg2", "").replace("+asyncpg", "")

    @right("1.1")
    def asyncpg_dsn_by_urlsplit(url: str) -> str:
        '''Parses the URL and rebuilds its scheme.'''
        ...

The course's test command (coursebook/pytest_plugin.py) renames each function to the exercise's own
name (``asyncpg_dsn``), puts it in place of the exercise cell and runs the checker in a real kernel: a
wrong answer must fail with ``hint`` in the output (the words that point the learner at this
mistake), a right answer must pass. The entries are real code, linted like the rest of the
repository. Names the notebook defines before the exercise are marked ``# noqa: F821``; imports at
the top of a catalogue file travel with the entries that use them.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from coursebook.model import BOOK_DIR, Notebook

ANSWERS_DIR = BOOK_DIR / "answers"
DECORATORS = ("wrong", "right")  # what cell_source() leaves out: they register, the kernel has no use for them


@dataclass(frozen=True)
class Answer:
    """One catalogue entry: a function that stands in for an exercise cell."""

    exercise: str  # "4.1"
    function: Callable = field(repr=False)

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def description(self) -> str:
        """The entry's docstring: what the learner did."""
        return inspect.getdoc(self.function) or self.name

    def cell_source(self, target: str) -> str:
        """The entry as an exercise cell: the imports it uses, then the function renamed to ``target``."""
        source = textwrap.dedent(inspect.getsource(self.function))
        definition = ast.parse(source).body[0]
        lines = source.splitlines()
        kept = [
            ast.get_source_segment(source, decorator)
            for decorator in definition.decorator_list
            if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") in DECORATORS)
        ]
        body = lines[definition.lineno - 1 :]
        prefix = "async def " if isinstance(definition, ast.AsyncFunctionDef) else "def "
        if not body[0].startswith(prefix + self.name + "("):
            raise ValueError(f"{self.name}: write the def on one line, as `{prefix}{self.name}(...`")
        body[0] = prefix + target + body[0][len(prefix + self.name) :]
        imports = _imports_used(Path(self.function.__code__.co_filename), definition)
        return "\n".join([*imports, *(f"@{d}" for d in kept), *body]) + "\n"


@dataclass(frozen=True)
class WrongAnswer(Answer):
    """An answer the checker must reject, with ``hint`` in what it says."""

    hint: str = field(kw_only=True)


@dataclass(frozen=True)
class RightAnswer(Answer):
    """A correct answer written differently from the model answer: the checker must accept it."""


_loading: list[Answer] | None = None  # the entries of the catalogue file being imported by load_file()


def _register(answer: Answer) -> None:
    if _loading is None:
        raise RuntimeError("catalogue entries register while coursebook.answers loads their file")
    _loading.append(answer)


def wrong(exercise: str, *, hint: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as a wrong answer to ``exercise``."""

    def register(function: Callable) -> Callable:
        # inspect.unwrap: a @pytest.fixture entry is wrapped, its source is the plain function's
        _register(WrongAnswer(exercise, inspect.unwrap(function), hint=hint))
        return function

    return register


def right(exercise: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as a right answer to ``exercise``."""

    def register(function: Callable) -> Callable:
        _register(RightAnswer(exercise, inspect.unwrap(function)))
        return function

    return register


@dataclass(frozen=True)
class Catalogue:
    """A notebook's entries (or several notebooks'), in file order."""

    entries: tuple[Answer, ...] = ()

    def wrong(self, exercise: str) -> list[WrongAnswer]:
        return [e for e in self.entries if isinstance(e, WrongAnswer) and e.exercise == exercise]

    def right(self, exercise: str) -> list[RightAnswer]:
        return [e for e in self.entries if isinstance(e, RightAnswer) and e.exercise == exercise]

    @property
    def exercises(self) -> set[str]:
        return {e.exercise for e in self.entries}

    def __add__(self, other: Catalogue) -> Catalogue:
        return Catalogue(self.entries + other.entries)


def path_for(notebook: Notebook) -> Path:
    """Where a notebook's catalogue is: notebooks/answers/<the notebook's stem>.py."""
    return ANSWERS_DIR / f"{notebook.stem}.py"


@cache
def load_file(path: Path) -> Catalogue:
    """The entries of one catalogue file (imported once per process); none if it does not exist."""
    global _loading
    if not path.exists():
        return Catalogue()
    spec = importlib.util.spec_from_file_location(f"answers_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the catalogue {path}")
    module = importlib.util.module_from_spec(spec)
    _loading = []
    try:
        spec.loader.exec_module(module)
        return Catalogue(tuple(_loading))
    finally:
        _loading = None


def for_notebook(notebook: Notebook) -> Catalogue:
    """One notebook's catalogue."""
    return load_file(path_for(notebook))


def load(notebooks: Iterable[Notebook] | None = None) -> Catalogue:
    """The catalogues of these notebooks (default: every catalogue file there is), as one."""
    paths = sorted(ANSWERS_DIR.glob("[0-9][0-9]_*.py")) if notebooks is None else map(path_for, notebooks)
    return sum((load_file(path) for path in paths), Catalogue())


# --- cells -------------------------------------------------------------------------------------


def cell_tree(source: str) -> ast.Module:
    """A cell's syntax tree: magics blanked out, top-level await allowed (a kernel allows it)."""
    plain = "\n".join("" if line.lstrip().startswith("%") else line for line in source.splitlines())
    return compile(plain, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def function_name(stub: str) -> str:
    """The name of the function an exercise cell asks for."""
    for node in cell_tree(stub).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node.name
    raise ValueError(f"no function in the exercise cell:\n{stub}")


def with_imports_of(stub: str, answer_source: str) -> str:
    """A replacement exercise cell keeps the stub's own imports (the learner edits below them)."""
    imports = [
        ast.get_source_segment(stub, node)
        for node in cell_tree(stub).body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return "\n".join([*imports, answer_source])


def _imports_used(module_path: Path, definition: ast.AST) -> list[str]:
    """The catalogue file's top-level import statements that bind a name the function uses."""
    used = {node.id for node in ast.walk(definition) if isinstance(node, ast.Name)}
    used |= {_root(node) for node in ast.walk(definition) if isinstance(node, ast.Attribute)}
    source = module_path.read_text()
    statements = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import | ast.ImportFrom) and not (
            isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("__future__", "coursebook"))
        ):
            bound = {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            if bound & used:
                statements.append(ast.get_source_segment(source, node))
    return statements


def _root(node: ast.AST) -> str:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""
