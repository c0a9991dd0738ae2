"""The mutants of a model answer: one change each, the near-misses the issue names, the same on every run."""

from __future__ import annotations

import ast

from coursebook import mutants

ANSWER = """
async def next_job(conn, pool):
    async with pool.acquire() as other:
        try:
            job = await conn.fetchval(
                "SELECT id FROM jobs WHERE status = 'queued' AND run_at <= now() "
                "ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED"
            )
        finally:
            await other.close()
    if job is not None and job < 10:
        return job
    return None
"""


def names(made: list[mutants.Mutant]) -> set[str]:
    return {mutant.name for mutant in made}


def test_the_near_misses_the_issue_names_are_made():
    made = names(mutants.mutants("9.9", ANSWER, cap=1000))
    for expected in [
        "sql-order: ORDER BY without id",
        "sql-order: ORDER BY without priority DESC",
        "sql-lock: no FOR UPDATE SKIP LOCKED",
        "sql-lock: FOR UPDATE SKIP LOCKED waits",
        "sql-where: AND without run_at <= CURRENT_TIMESTAMP",
        "sql-compare: run_at <= CURRENT_TIMESTAMP -> run_at < CURRENT_TIMESTAMP",
        "sql-limit: LIMIT 2",
        "compare: job < 10 -> job <= 10",
        "boolean: and -> or in job is not None and job < 10",
        "finally: no finally: await other.close()",
        "awaited-statement: no await other.close()",
        "with: async with pool.acquire() dropped",
        "off-by-one: 10 -> 11 in job is not None and job < 10",
    ]:
        assert expected in made, f"{expected!r} not among {sorted(made)}"


def test_each_mutant_is_one_change_that_compiles():
    original = ast.unparse(ast.parse(ANSWER))
    made = mutants.mutants("9.9", ANSWER, cap=1000)
    assert len(names(made)) == len(made), "two mutants share a name"
    for mutant in made:
        compile(mutant.source, mutant.name, "exec")
        assert ast.unparse(ast.parse(mutant.source)) != original, f"{mutant.name} changes nothing"


def test_a_dropped_with_keeps_the_name_and_loses_the_exit():
    (dropped,) = [m for m in mutants.mutants("9.9", ANSWER, cap=1000) if m.kind == "with"]
    assert "other = await pool.acquire().__aenter__()" in dropped.source
    assert "async with" not in dropped.source


def test_the_cap_takes_every_kind_in_turn_and_the_same_mutants_every_time():
    first = mutants.mutants("9.9", ANSWER, cap=6)
    assert first == mutants.mutants("9.9", ANSWER, cap=6)
    assert [m.kind for m in first] == ["sql-order", "sql-where", "sql-lock", "sql-compare", "sql-limit", "compare"]


def test_sql_that_does_not_parse_and_cells_with_magics_make_no_mutants():
    assert mutants.mutants("9.9", 'def f():\n    return "SELECT FROM WHERE ORDER"\n', cap=1000) == []
    assert mutants.mutants("9.9", "%%ipytest\ndef test_x():\n    pass\n") == []
