"""Notebook, Exercise and iter_notebooks(): each notebook's source parsed once, by cell tags; the facts
its header states about it (Facts)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from coursebook.cells import CHECKER, EXERCISE, HINT, SOLUTION, tags
from coursebook.navigation import with_navigation
from coursedb.paths import course_root

ROOT = course_root()

BOOK_DIR = ROOT / "notebooks"  # the executed notebooks with committed outputs
SOURCE_DIR = BOOK_DIR / "src"  # their percent-format sources, the truth reviewers read
SOURCE_NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.py$")
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
CELL_TIMEOUT_S = 300
STATED_TIME = re.compile(r"\*About (\d+) minutes\.\*")


@dataclass
class Exercise:
    """Where one exercise's cells are, as indices into the cell list it was found in."""

    id: str
    stub: int
    solution: int | None = None
    checker: int | None = None
    hints: list[int] = field(default_factory=list)


def find_exercises(cells: list[Any]) -> dict[str, Exercise]:
    """Exercises by id ("2.1"), in notebook order, from the tags and `exercise` key of any cell list
    (a source, a built book without solutions, a learner copy). Malformed tagging raises ValueError."""
    found: dict[str, Exercise] = {}
    pending: dict[str, dict[str, Any]] = {}
    for index, cell in enumerate(cells):
        cell_tags = tags(cell)
        roles = [t for t in (EXERCISE, SOLUTION, CHECKER, HINT) if t in cell_tags]
        if not roles:
            continue
        ex_id = cell.get("metadata", {}).get("exercise")
        if not isinstance(ex_id, str) or not re.fullmatch(r"\d+\.\d+", ex_id):
            raise ValueError(f'cell {index} is tagged {roles[0]!r} but has no exercise="N.M" in its header')
        if len(roles) > 1:
            raise ValueError(f"cell {index} of exercise {ex_id} has two roles: {roles}")
        role = roles[0]
        slot = pending.setdefault(ex_id, {"hints": []})
        if role == HINT:
            slot["hints"].append(index)
        elif role in slot:
            raise ValueError(f"exercise {ex_id} has two {role} cells ({slot[role]} and {index})")
        else:
            slot[role] = index
    for ex_id, slot in pending.items():
        if EXERCISE not in slot:
            raise ValueError(f"exercise {ex_id} has no cell tagged 'exercise'")
        found[ex_id] = Exercise(
            ex_id, slot[EXERCISE], slot.get(SOLUTION), slot.get(CHECKER), slot["hints"]
        )  # fmt: skip
    return found


@dataclass(frozen=True)
class Facts:
    """What a notebook's source states about itself in its header, for the notebook run:

    # ---
    # jupyter:
    #   course:
    #     connections: 8               # most sessions open at once (default: coursedb.room.BUDGET)
    #     must_show: [image/png]       # in some output of a Run All from the learner copies
    #     must_not_show: [No results]  # in none of them
    # ---
    """

    connections: int | None = None
    must_show: tuple[str, ...] = ()
    must_not_show: tuple[str, ...] = ()

    @classmethod
    def from_header(cls, header: Any, where: str) -> Facts:
        """The ``course`` mapping of the header; ValueError with one sentence if it says something else."""
        header = {} if header is None else header
        readers = {"connections": _number, "must_show": _texts, "must_not_show": _texts}
        if not isinstance(header, dict) or set(header) - set(readers):
            raise ValueError(f"{where}: the header's course: may hold only {', '.join(readers)}; it has {header!r}")
        read = {}
        for key, value in header.items():
            read[key], kind = readers[key](value)
            if read[key] is None:
                raise ValueError(f"{where}: course.{key} in the header must be {kind}, not {value!r}")
        return cls(**read)


def _number(value: Any) -> tuple[int | None, str]:
    return (value if isinstance(value, int) and not isinstance(value, bool) else None), "a number"


def _texts(value: Any) -> tuple[tuple[str, ...] | None, str]:
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    return (tuple(value) if ok else None), "a list of texts"


@dataclass
class Notebook:
    """One course notebook: its percent source notebooks/src/NN_*.py and its built book notebooks/NN_*.ipynb."""

    source_path: Path

    @property
    def stem(self) -> str:
        return self.source_path.stem

    @property
    def number(self) -> int:
        return int(self.stem[:2])

    @property
    def book_path(self) -> Path:
        return BOOK_DIR / f"{self.stem}.ipynb"

    @cached_property
    def source(self) -> Any:
        """The source as an nbformat notebook (jupytext), solution cells included."""
        import jupytext

        return jupytext.read(self.source_path, fmt="py:percent")

    @property
    def cells(self) -> list[Any]:
        return self.source.cells

    @cached_property
    def facts(self) -> Facts:
        """What the source's header states (Facts)."""
        return Facts.from_header(self.source.metadata.get("course"), self.source_path.name)

    @cached_property
    def exercises(self) -> dict[str, Exercise]:
        """Exercises of the source (indices into .cells)."""
        return find_exercises(self.cells)

    @property
    def title(self) -> str:
        """The first heading, without its number: "Connection pools"."""
        for cell in self.cells:
            if cell.cell_type == "markdown":
                match = re.search(r"^# (?:\d\d · )?(.+)$", cell.source, flags=re.MULTILINE)
                if match:
                    return match.group(1).strip()
        return self.stem

    @property
    def stated_minutes(self) -> int | None:
        """The "*About N minutes.*" the notebook states in its introduction."""
        for cell in self.cells:
            if cell.cell_type == "markdown" and (match := STATED_TIME.search(cell.source)):
                return int(match.group(1))
        return None

    def read_book(self) -> Any:
        """The committed, executed notebook (no solution cells)."""
        import nbformat

        return nbformat.read(self.book_path, as_version=4)

    def book_cells(self) -> list[Any]:
        """The source's cells as the built book has them: solution cells dropped, navigation appended."""
        import copy

        cells = [copy.deepcopy(c) for c in self.cells if SOLUTION not in tags(c)]
        return with_navigation(cells, self, list(iter_notebooks()))

    def pairing_problem(self) -> str | None:
        """Why the committed book does not match its source cell by cell (type, text, tags, exercise), or None."""
        import difflib

        if not self.book_path.exists():
            return f"{self.source_path.name} is not built: python3 course.py build {self.stem[:2]}"

        def key(c: Any) -> tuple:
            return c.cell_type, c.source, tags(c), c.metadata.get("exercise")

        built, written = [key(c) for c in self.read_book().cells], [key(c) for c in self.book_cells()]
        rebuild = f"Rebuild: python3 course.py build {self.stem[:2]}"
        for index, (a, b) in enumerate(zip(built, written, strict=False)):
            if a != b:
                diff = difflib.unified_diff(b[1].splitlines(), a[1].splitlines(), "src", "ipynb", lineterm="")
                return (
                    f"cell {index} of {self.book_path.name} differs from notebooks/src/{self.source_path.name} "
                    f"(type/tags/exercise {b[0]}/{b[2]}/{b[3]} vs {a[0]}/{a[2]}/{a[3]}):\n"
                    + "\n".join(diff)
                    + f"\n{rebuild}"
                )
        if len(built) != len(written):
            counts = f"{len(built)} cells, its source {len(written)} (without solutions)"
            return f"{self.book_path.name} has {counts}. {rebuild}"
        return None


def iter_notebooks(prefixes: Iterable[str] = ()) -> Iterator[Notebook]:
    """Every course notebook in order, or only those whose name starts with one of `prefixes`."""
    prefixes = tuple(prefixes)
    for path in sorted(SOURCE_DIR.iterdir()):
        if SOURCE_NAME.match(path.name) and (not prefixes or path.name.startswith(prefixes)):
            yield Notebook(path)


def progress_store() -> Path:
    """An empty folder for the checker outcomes of one notebook's kernel (``COURSEDB_PROGRESS``): its progress
    cell then shows what this run of it did, never anyone's own progress, the same on every run. The
    caller removes it once the kernel has ended."""
    return Path(tempfile.mkdtemp(prefix="coursebook-progress-"))


def notebook_client(nb: Any, cwd: Path, timeout: int = CELL_TIMEOUT_S, **options: Any) -> Any:
    """An nbclient NotebookClient on the course kernel, running in `cwd` (a notebook's folder).

    Like Jupyter's Run All: a failing cell raises CellExecutionError unless tagged raises-exception."""
    from nbclient import NotebookClient

    return NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}, **options
    )  # fmt: skip
