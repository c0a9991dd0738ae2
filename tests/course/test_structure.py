"""The floors read top-down: coursedb (runtime) <- coursebook (authoring) <- tests/, benchmarks/.

Read from the source (an AST walk, imports inside functions included, ``if TYPE_CHECKING:`` blocks
not): nothing outside tests/ imports from tests/; coursedb imports nothing above it; what a learner's
kernel loads (coursedb, conftest.py, shop, the notebooks' sources) imports no authoring code; and no
two modules of coursedb and coursebook import each other, directly or round a longer loop.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from coursebook import ROOT

SKIPPED = {".venv", "build", "learner", ".git", "tests", "__pycache__"}
# The module ipytest writes beside a notebook for a running %%ipytest cell and deletes after it (strict nbval
# runs the notebooks in notebooks/ on another worker meanwhile): not the repository's, and maybe gone by the read.
IPYTEST_CELL = re.compile(r"t_[0-9a-f]{32}\.py")


def python_files(*folders: str) -> list[Path]:
    found = []
    for folder in folders:
        path = ROOT / folder
        if path.is_file():
            found.append(path)
            continue
        found += [
            p
            for p in path.rglob("*.py")
            if not SKIPPED & set(p.relative_to(ROOT).parts) and not IPYTEST_CELL.fullmatch(p.name)
        ]
    return sorted(found)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, module: str | None = None) -> set[str]:
    """Every module name ``path`` (the module ``module``, by default named after its place in the course)
    imports, relative imports resolved, TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    here = (module or module_name(path)).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names |= {f"{module}.{alias.name}" for alias in node.names}  # the graph keeps what is a module
    return names


def top(name: str) -> str:
    return name.split(".")[0]


def offenders(files: list[Path], forbidden: set[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(imported(path))
        if top(name) in forbidden
    ]


def test_nothing_outside_tests_imports_from_tests():
    files = python_files("coursedb", "coursebook", "benchmarks", "notebooks", "hub", "shop", "conftest.py", "course.py")
    assert files and not offenders(files, {"tests"}), offenders(files, {"tests"})


def test_coursedb_imports_nothing_above_it():
    found = offenders(python_files("coursedb"), {"coursebook", "tests", "benchmarks", "course"})
    assert not found, found


def test_what_a_learners_kernel_loads_imports_no_authoring_code():
    """Learner copies run outside the repository, where only the installed course (coursedb, shop) exists."""
    files = python_files("conftest.py", "shop", "notebooks/src")
    assert not offenders(files, {"coursebook", "tests", "benchmarks"}), offenders(files, {"coursebook", "tests"})


def test_coursebook_imports_neither_tests_nor_benchmarks():
    found = offenders(python_files("coursebook"), {"tests", "benchmarks", "course"})
    assert not found, found


# Files that find the course's folder from their own place, each because coursedb.paths cannot serve it.
ROOT_FOUND_ELSEWHERE = {
    "course.py": "the launcher: runs on a bare Python, before the venv (and coursedb) exists",
    "coursedb/platform.py": "re-executes coursedb in the course's venv, before the course's packages can load",
    "benchmarks/launch.py": "standard library only: it times a launch from a fresh clone with a bare Python",
    "hub/jupyterhub_config.py": "loaded by JupyterHub in the hub's own environment, where coursedb is not installed",
}


# A folder found from a file's own place: any folder (course.py's is the root), or one above a test's own.
FOLDER_OF = re.compile(r"__file__\)(\.resolve\(\))?\.parent")
ABOVE = re.compile(r"__file__\)(\.resolve\(\))?\.(parent\.parent|parents\[)")


def test_the_course_root_is_found_only_in_coursedb_paths():
    """The one owner is coursedb.paths.course_root(). A module may name a file beside it (``with_name``),
    a test its own folder; neither climbs to the root."""
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    found = []
    for name in tracked.stdout.split():
        climbs = (ABOVE if name.startswith("tests/") else FOLDER_OF).search((ROOT / name).read_text())
        if climbs and name != "coursedb/paths.py":
            found.append(name)
    assert sorted(found) == sorted(ROOT_FOUND_ELSEWHERE), set(found) ^ set(ROOT_FOUND_ELSEWHERE)


def dependency_graph(files: list[Path]) -> dict[str, set[str]]:
    """module -> the modules of ``files`` it imports: ``from pkg import name`` counts as pkg.name if that
    is a module, else as pkg (its __init__ defines the name); a package's own __init__, run first by any
    import of its modules, is not counted then."""
    modules = {module_name(path): path for path in files}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for target in imported(path):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other round a loop (strongly connected, more than one)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in order:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], order[nxt])
        if low[node] == order[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return found


def test_no_import_cycle_in_coursedb_and_coursebook():
    graph = dependency_graph(python_files("coursedb", "coursebook"))
    assert len(graph) > 30, "the walk found too few modules to mean anything"
    assert {"coursedb.backends", "coursedb.backends.base", "coursedb.backends.docker"} <= set(graph)
    assert cycles(graph) == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set(), "c": {"b"}}, []),
    ],
)
def test_the_cycle_finder_finds_loops(graph, expected):
    assert cycles(graph) == expected


def test_the_walk_sees_lazy_and_relative_imports_but_not_typing_only_ones(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\nfrom . import paths\nfrom .errors import CourseDBError\n"
        "if TYPE_CHECKING:\n    from coursebook import model\n"
        "def later():\n    from tests.helpers import cli\n"
    )
    found = imported(probe, module="coursedb.probe")
    assert {"coursedb.paths", "coursedb.errors.CourseDBError", "tests.helpers.cli"} <= found
    assert "coursebook" not in {top(name) for name in found}
