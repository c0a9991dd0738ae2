"""The exercise rules (coursebook/exercises.py): every notebook meets them, and each rule bites.

Each rule is shown failing on a throwaway exercise written here, and a well-made throwaway
exercise shows that none complains without a reason.
"""

from __future__ import annotations

import jupytext
import pytest

from coursebook import exercises, iter_notebooks, model
from coursebook.answers import Catalogue, RightAnswer, WrongAnswer

NOTEBOOKS = list(iter_notebooks())


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_every_exercise_meets_the_rules(notebook):
    problems = exercises.problems(notebook)
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda n: n.stem)
def test_nothing_is_pending_that_already_holds(notebook):
    done = exercises.needlessly_pending(notebook)
    assert not done, f"{notebook.stem} now meets {done}: remove it from PENDING in coursebook/exercises.py"


WELL_MADE = """
# %% [markdown]
# # 99 · A throwaway notebook

# %% tags=["exercise"] exercise="9.1"
def answer() -> int:
    raise NotImplementedError("Exercise 9.1: the answer to everything")

# %% tags=["solution"] exercise="9.1"
def answer() -> int:
    return 42

# %% tags=["checker", "raises-exception"] exercise="9.1"
# %%ipytest --exercise 9.1
def test_answer():
    assert answer() == 42, "Exercise 9.1: not the answer"

# %% [markdown] tags=["hint"] exercise="9.1"
# <details><summary>Hint 1</summary>
#
# Six times seven.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `return 42`
# </details>
"""

BROKEN = """
# %% tags=["exercise"] exercise="9.1"
def answer(conn):
    raise NotImplementedError("Exercise 9.1: return await conn.fetchval('SELECT 42')")

# %% tags=["solution"] exercise="9.1"
async def answer(conn):
    return await conn.fetchval('SELECT 42')

# %% tags=["checker"] exercise="9.1"
assert answer

# %% tags=["exercise"] exercise="9.2"
def other():
    raise ValueError("not done yet")

# %% tags=["checker", "raises-exception"] exercise="9.2"
# %%ipytest --exercise 9.1
def test_other():
    assert other()

# %% tags=["solution"] exercise="9.2"
def other():
    return 1

# %% [markdown] tags=["hint"] exercise="9.2"
# Think about it.
"""


def _entry(kind, exercise, number):
    def function():
        """An entry of a throwaway catalogue."""

    function.__name__ = f"entry_{number}"
    return WrongAnswer(exercise, function, hint="no") if kind == "wrong" else RightAnswer(exercise, function)


def _catalogue(**counts: int) -> Catalogue:
    """wrong_9_1=3, right_9_1=2 ...: that many entries of each kind for each exercise."""
    entries = []
    for key, count in counts.items():
        kind, exercise = key.split("_", 1)
        entries += [_entry(kind, exercise.replace("_", "."), n) for n in range(count)]
    return Catalogue(tuple(entries))


def test_a_well_made_exercise_breaks_no_rule():
    cells = jupytext.reads(WELL_MADE, fmt="py:percent").cells
    assert exercises.check(cells, _catalogue(wrong_9_1=3, right_9_1=2), "99_throwaway") == []


def test_the_validator_names_each_rule_a_throwaway_exercise_breaks():
    cells = jupytext.reads(BROKEN, fmt="py:percent").cells
    catalogue = _catalogue(wrong_9_1=1, right_9_2=1, wrong_9_3=3)
    found = exercises.check(cells, catalogue, "99_throwaway")
    broken = {(p.where, p.rule) for p in found}
    assert broken == {
        ("Exercise 9.1", "checker"),  # no %%ipytest
        ("Exercise 9.1", "stub gives away"),  # the message is the solution's code
        ("Exercise 9.1", "hints"),
        ("Exercise 9.1", "wrong answers"),  # 1 of 3
        ("Exercise 9.1", "right answers"),  # 0 of 2
        ("Exercise 9.2", "cells"),  # the solution after the checker
        ("Exercise 9.2", "checker"),  # --exercise 9.1: its runs would count for another exercise
        ("Exercise 9.2", "stub raises"),  # ValueError, no "Exercise 9.2: "
        ("Exercise 9.2", "hint format"),  # text outside <details>
        ("Exercise 9.2", "wrong answers"),
        ("Exercise 9.2", "right answers"),  # 1 of 2
        ("99_throwaway", "catalogue"),  # entries for 9.3, which does not exist
    }, "\n".join(map(str, found))
    assert set(exercises.RULES) | {"catalogue"} == {rule for _, rule in broken}, "a rule this test does not show"
    for problem in found:
        assert problem.sentence and "\n" not in problem.sentence, problem
    assert "return await conn.fetchval('SELECT 42')" in str(next(p for p in found if p.rule == "stub gives away"))


@pytest.mark.parametrize(
    "first_line",
    ["# %%ipytest", "# %%ipytest --exercise 9.2", "# %%ipytest --exercise", "# %%ipytest --exercise '9.1"],
)
def test_a_checker_names_its_exercise_for_the_kernel(first_line):
    cells = jupytext.reads(WELL_MADE.replace("# %%ipytest --exercise 9.1", first_line), fmt="py:percent").cells
    (problem,) = exercises.check(cells, _catalogue(wrong_9_1=3, right_9_1=2), "99_throwaway")
    assert (problem.rule, problem.sentence) == ("checker", "start the checker with %%ipytest --exercise 9.1")


def test_pending_rules_are_not_checked():
    cells = jupytext.reads(WELL_MADE, fmt="py:percent").cells
    assert exercises.check(cells, _catalogue(wrong_9_1=3), "99_throwaway", pending={"right answers"}) == []


def test_malformed_tags_and_no_exercise_are_one_sentence_each():
    untagged = jupytext.reads('# %% tags=["exercise"]\ndef f():\n    pass\n', fmt="py:percent").cells
    (problem,) = exercises.check(untagged, Catalogue(), "99_throwaway")
    assert problem.rule == "tags" and 'exercise="N.M"' in problem.sentence
    (problem,) = exercises.check(jupytext.reads("# %%\nx = 1\n", fmt="py:percent").cells, Catalogue(), "99_x")
    assert problem.rule == "exercises"


def test_a_header_that_says_something_else_is_one_sentence():
    with pytest.raises(ValueError, match=r"99_x.py: the header's course: may hold only connections, must_show"):
        model.Facts.from_header({"budget": 3}, "99_x.py")
    with pytest.raises(ValueError, match=r"course.connections in the header must be a number, not 'many'"):
        model.Facts.from_header({"connections": "many"}, "99_x.py")
    assert model.Facts.from_header({"must_show": ["image/png"]}, "99_x.py").must_show == ("image/png",)
