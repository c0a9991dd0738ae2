"""Near-misses made by machine from a model answer: each one its checker must reject, or list as equivalent.

A hand catalogue holds the mistakes its author thought of. Mutants add the ones nobody wrote down: for
every ``solution`` cell, ``mutants()`` changes one thing at a time, the way a learner's answer is one
step away from right:

- in the SQL of its string literals (parsed with sqlglot, written back as PostgreSQL): drop an
  ``ORDER BY`` term or the whole ``ORDER BY``, flip ``ASC``/``DESC``, drop a ``WHERE`` or one ``AND`` term,
  swap ``<``/``<=``, drop or change ``LIMIT``, drop a lock clause (``FOR UPDATE``) or its ``SKIP LOCKED``
  or ``NOWAIT``, drop ``RETURNING``;
- in the Python (``ast``): swap ``<``/``<=``, ``==``/``!=``, ``in``/``not in``, ``and``/``or``; move an
  integer constant by one; drop a ``finally``, an ``except`` clause, an ``if`` guard, a keyword argument,
  a decorator, an ``await`` or an awaited statement (a cleanup such as ``await conn.close()``); widen an
  ``except`` to ``Exception``; use a context manager without its exit (``async with pool.acquire() as
  conn`` becomes ``conn = await pool.acquire().__aenter__()``: what a learner gets by forgetting the
  ``with``).

The notebook run (coursebook/pytest_plugin.py) puts each mutant in place of the exercise cell, as it
does with the catalogue's wrong answers: the checker must fail on it, and the kernel must still answer
afterwards. A mutant that behaves exactly like the model answer cannot be rejected by any checker; it
is listed in the notebook's catalogue (notebooks/answers/NN_name.py) with the reason:

    equivalent("1.1", "off-by-one: 1 -> 2 in scheme.split('+', 2)",
               reason="splitting at the first two '+' leaves the part before the first one unchanged")

The name of a mutant is stable (the kind of change and what it changed), so a listing outlives
reformatting; a listing whose mutant no longer exists is reported, so it cannot go stale.
Mutants are capped per exercise (``MAX_PER_EXERCISE``), chosen round-robin over the kinds of change,
in a fixed order: the same mutants on every run, within the suite's time budget.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MAX_PER_EXERCISE = 8
SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Mutant:
    exercise: str
    name: str  # "<kind>: <what changed>", stable while the model answer is
    source: str  # the model answer's cell with this one change

    @property
    def kind(self) -> str:
        return self.name.split(":", 1)[0]


# --- listing equivalent mutants (called by the notebooks' catalogues) --------------------------------

EQUIVALENT: dict[tuple[str, str], str] = {}  # (exercise, mutant name) -> why no checker can reject it


def equivalent(exercise: str, mutant: str, *, reason: str) -> None:
    """List ``mutant`` of ``exercise``'s model answer as behaving exactly like it, and say why."""
    if not reason.strip():
        raise ValueError(f"equivalent({exercise!r}, {mutant!r}): say why it behaves like the model answer")
    EQUIVALENT[(exercise, mutant)] = reason


# --- making mutants ----------------------------------------------------------------------------------


def mutants(exercise: str, solution: str, cap: int = MAX_PER_EXERCISE) -> list[Mutant]:
    """The first ``cap`` mutants of a solution cell, round-robin over the kinds of change (fixed order)."""
    try:
        seen = {_normal(solution)}
    except SyntaxError:  # a cell with a magic line: ast cannot write it back
        return []
    by_kind: dict[str, list[Mutant]] = {kind: [] for kind in KINDS}
    names: set[str] = set()
    for kind, name, source in _all_changes(solution):
        if not _compiles(source) or _normal(source) in seen:
            continue
        seen.add(_normal(source))
        unique, count = f"{kind}: {name}", 1
        while unique in names:  # the same change in two places: numbered in the order they appear
            count += 1
            unique = f"{kind}: {name} ({count})"
        names.add(unique)
        by_kind[kind].append(Mutant(exercise, unique, source))
    chosen: list[Mutant] = []
    queues = [iter(found) for found in by_kind.values() if found]
    while queues and len(chosen) < cap:
        for queue in list(queues):
            item = next(queue, None)
            if item is None:
                queues.remove(queue)
            elif len(chosen) < cap:
                chosen.append(item)
    return chosen


def _normal(source: str) -> str:
    return ast.unparse(ast.parse(source))


def _compiles(source: str) -> bool:
    try:
        compile(source, "<mutant>", "exec")
    except SyntaxError:
        return False
    return True


Change = Callable[[ast.AST, dict[ast.AST, ast.AST]], None]


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _replace_statement(node: ast.stmt, parents: dict[ast.AST, ast.AST], new: list[ast.stmt]) -> None:
    """Put ``new`` where the statement ``node`` was (``pass`` if a block would be left empty)."""
    parent = parents[node]
    for field in ("body", "orelse", "finalbody"):
        block = getattr(parent, field, None)
        if isinstance(block, list) and any(item is node for item in block):
            at = next(i for i, item in enumerate(block) if item is node)
            block[at : at + 1] = new
            if not block and field != "orelse":  # an empty else is no else; other blocks need a statement
                block.append(ast.Pass())
            return
    for handler in getattr(parent, "handlers", []):
        if any(item is node for item in handler.body):
            _replace_statement(node, {node: handler}, new)
            return
    raise LookupError(f"no block holds {ast.dump(node)[:80]}")


def _short(node: ast.AST) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= 70 else text[:67] + "..."


# Python -------------------------------------------------------------------------------------------

SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip


def _compare(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):

            def change(target: ast.AST, parents: dict, i: int = i, op: ast.cmpop = op) -> None:
                target.ops[i] = SWAPS[type(op)]()

            swapped = copy.deepcopy(node)
            swapped.ops[i] = SWAPS[type(op)]()
            yield f"{_short(node)} -> {_short(swapped)}", change


def _boolop(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And

        def change(target: ast.AST, parents: dict) -> None:
            target.op = other()

        yield f"{type(node.op).__name__.lower()} -> {other.__name__.lower()} in {_short(node)}", change


def _off_by_one(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        for delta in (1, -1):

            def change(target: ast.AST, parents: dict, delta: int = delta) -> None:
                target.value += delta

            yield f"{node.value} -> {node.value + delta}", change


def _named_in_context(find: Callable[[ast.AST], Iterator[tuple[str, Change]]]) -> Callable:
    """A finder whose names also show the expression around the change (a constant alone says little)."""

    def found(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> Iterator[tuple[str, Change]]:
        around = parents.get(node, node)
        while isinstance(parents.get(around), ast.expr) and len(_short(parents[around])) < 50:
            around = parents[around]
        for name, change in find(node):
            yield f"{name} in {_short(around)}", change

    return found


def _drop_await(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.Await):

        def change(target: ast.AST, parents: dict) -> None:
            parent = parents[target]
            for field, value in ast.iter_fields(parent):
                if value is target:
                    setattr(parent, field, target.value)
                elif isinstance(value, list):
                    value[:] = [target.value if item is target else item for item in value]

        yield f"await dropped before {_short(node.value)}", change


def _drop_awaited_statement(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Await):

        def change(target: ast.AST, parents: dict) -> None:
            _replace_statement(target, parents, [])

        yield f"no {_short(node)}", change


def _drop_finally(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.Try) and node.finalbody:

        def change(target: ast.AST, parents: dict) -> None:
            target.finalbody = []
            if not target.handlers:
                _replace_statement(target, parents, target.body)

        yield f"no finally: {_short(node.finalbody[0])}", change


def _drop_handler(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.Try):
        for i, handler in enumerate(node.handlers):

            def change(target: ast.AST, parents: dict, i: int = i) -> None:
                del target.handlers[i]
                if not target.handlers and not target.finalbody:
                    _replace_statement(target, parents, target.body + target.orelse)

            caught = _short(handler.type) if handler.type else "everything"
            yield f"no except {caught}", change


def _widen_except(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.ExceptHandler) and node.type is not None and _short(node.type) != "Exception":

        def change(target: ast.AST, parents: dict) -> None:
            target.type = ast.Name("Exception", ast.Load())

        yield f"except {_short(node.type)} -> except Exception", change


def _drop_if(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.If) and not node.orelse:

        def change(target: ast.AST, parents: dict) -> None:
            _replace_statement(target, parents, [])

        yield f"no guard if {_short(node.test)}", change


def _drop_context_manager(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.With | ast.AsyncWith):
        is_async = isinstance(node, ast.AsyncWith)
        for i, item in enumerate(node.items):

            def change(target: ast.AST, parents: dict, i: int = i) -> None:
                item = target.items.pop(i)
                entered: list[ast.stmt] = []
                if item.optional_vars is not None:  # the name is still bound, the exit never runs
                    method = "__aenter__" if is_async else "__enter__"
                    call: ast.expr = ast.Call(ast.Attribute(item.context_expr, method, ast.Load()), [], [])
                    entered = [ast.Assign([item.optional_vars], ast.Await(call) if is_async else call)]
                if target.items:
                    target.body[:0] = entered
                else:
                    _replace_statement(target, parents, entered + target.body)

            yield f"{'async ' if is_async else ''}with {_short(item.context_expr)} dropped", change


def _drop_keyword(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.Call):
        for i, keyword in enumerate(node.keywords):
            if keyword.arg is None:
                continue

            def change(target: ast.AST, parents: dict, i: int = i) -> None:
                del target.keywords[i]

            yield f"no {keyword.arg}= in {_short(node.func)}(...)", change


def _drop_decorator(node: ast.AST) -> Iterator[tuple[str, Change]]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        for i, decorator in enumerate(node.decorator_list):

            def change(target: ast.AST, parents: dict, i: int = i) -> None:
                del target.decorator_list[i]

            yield f"no @{_short(decorator)} on {node.name}", change


# SQL ----------------------------------------------------------------------------------------------


def _sql_changes(sql: str) -> Iterator[tuple[str, str, str]]:
    """(kind, name, new SQL) for one SQL string: each a single change to its parsed tree."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, dialect="postgres")
    except sqlglot.errors.ParseError:
        return
    nodes = list(tree.walk())

    def changed(index: int, edit: Callable[[exp.Expression], None]) -> str:
        mutated = tree.copy()
        edit(list(mutated.walk())[index])
        return mutated.sql(dialect="postgres")

    for index, node in enumerate(nodes):
        if isinstance(node, exp.Order):
            terms = node.expressions
            if len(terms) > 1:
                for i, term in enumerate(terms):
                    yield (
                        "sql-order",
                        f"ORDER BY without {term.sql('postgres')}",
                        changed(index, lambda n, i=i: n.set("expressions", n.expressions[:i] + n.expressions[i + 1 :])),
                    )
            yield "sql-order", "no ORDER BY", changed(index, lambda n: n.pop())
            for i, term in enumerate(terms):
                flipped = "ASC" if term.args.get("desc") else "DESC"
                yield (
                    "sql-order",
                    f"{term.sql('postgres')} -> {flipped}",
                    changed(index, lambda n, i=i: n.expressions[i].set("desc", not n.expressions[i].args.get("desc"))),
                )
        elif isinstance(node, exp.Where):
            yield "sql-where", "no WHERE", changed(index, lambda n: n.pop())
        elif isinstance(node, exp.And):
            for side in ("this", "expression"):
                kept = "expression" if side == "this" else "this"
                yield (
                    "sql-where",
                    f"AND without {node.args[side].sql('postgres')}",
                    changed(index, lambda n, kept=kept: n.replace(n.args[kept].copy())),
                )
        elif isinstance(node, exp.LT | exp.LTE | exp.GT | exp.GTE):
            other = {exp.LT: exp.LTE, exp.LTE: exp.LT, exp.GT: exp.GTE, exp.GTE: exp.GT}[type(node)]
            swapped = other(this=node.this.copy(), expression=node.expression.copy()).sql("postgres")
            yield (
                "sql-compare",
                f"{node.sql('postgres')} -> {swapped}",
                changed(
                    index, lambda n, other=other: n.replace(other(this=n.this.copy(), expression=n.expression.copy()))
                ),
            )
        elif isinstance(node, exp.Limit):
            yield "sql-limit", "no LIMIT", changed(index, lambda n: n.pop())
            value = node.expression
            if isinstance(value, exp.Literal) and value.is_int:
                yield (
                    "sql-limit",
                    f"LIMIT {int(value.this) + 1}",
                    changed(index, lambda n: n.set("expression", exp.Literal.number(int(n.expression.this) + 1))),
                )
        elif isinstance(node, exp.Lock):
            yield "sql-lock", f"no {node.sql('postgres')}", changed(index, lambda n: n.pop())
            if node.args.get("wait") is not None:
                yield "sql-lock", f"{node.sql('postgres')} waits", changed(index, lambda n: n.set("wait", None))
        elif isinstance(node, exp.Returning):
            yield "sql-returning", "no RETURNING", changed(index, lambda n: n.pop())
        elif isinstance(node, exp.Distinct):
            yield "sql-distinct", "no DISTINCT", changed(index, lambda n: n.pop())


def _sql_in_python(solution: str) -> Iterator[tuple[str, str, str]]:
    tree = ast.parse(solution)
    for index, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_START.match(node.value):
            for kind, name, sql in _sql_changes(node.value):
                mutated = copy.deepcopy(tree)
                list(ast.walk(mutated))[index].value = sql
                yield kind, name, ast.unparse(mutated)


# The kinds of change, in the order the cap draws from them (SQL first: most of the course is SQL).
PYTHON_KINDS: dict[str, Callable[[ast.AST], Iterator[tuple[str, Change]]]] = {
    "compare": _compare,
    "finally": _drop_finally,
    "with": _drop_context_manager,
    "except": _drop_handler,
    "except-widened": _widen_except,
    "guard": _drop_if,
    "awaited-statement": _drop_awaited_statement,
    "await": _drop_await,
    "off-by-one": _named_in_context(_off_by_one),
    "keyword": _drop_keyword,
    "decorator": _drop_decorator,
    "boolean": _boolop,
}
CONTEXT_KINDS = {"off-by-one"}
SQL_KINDS = ("sql-order", "sql-where", "sql-lock", "sql-compare", "sql-limit", "sql-returning", "sql-distinct")
KINDS = (*SQL_KINDS, *PYTHON_KINDS)


def _all_changes(solution: str) -> Iterator[tuple[str, str, str]]:
    yield from _sql_in_python(solution)
    tree = ast.parse(solution)
    parents = _parents(tree)
    for kind, find in PYTHON_KINDS.items():
        for index, node in enumerate(ast.walk(tree)):
            found = find(node, parents) if kind in CONTEXT_KINDS else find(node)
            for name, change in found:
                mutated = copy.deepcopy(tree)
                target = list(ast.walk(mutated))[index]
                change(target, _parents(mutated))
                yield kind, name, ast.unparse(ast.fix_missing_locations(mutated))


def main(argv: list[str] | None = None) -> int:
    """``python -m coursebook.mutants [NN ...]``: each exercise's mutants, as the notebook run tries them."""
    import sys

    from coursebook import answers
    from coursebook.model import iter_notebooks

    for notebook in iter_notebooks((sys.argv[1:] if argv is None else argv) or None):
        answers.for_notebook(notebook)  # the catalogue lists the equivalent mutants
        for exercise, cells in notebook.exercises.items():
            made = mutants(exercise, notebook.cells[cells.solution].source)
            print(f"Exercise {exercise}: {len(made)} mutants")
            for mutant in made:
                why = EQUIVALENT.get((exercise, mutant.name))
                print(f"  {mutant.name}" + (f"\n      EQUIVALENT: {why}" if why else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
