"""Sentences for problems coursedb cannot raise itself but can recognise in a notebook."""

from __future__ import annotations

from pathlib import Path

from .names import PREFIX


def missing_database(exc: BaseException) -> str | None:
    """For asyncpg's 'database "coursedb_..." does not exist': the DSN in hand is stale."""
    text = str(exc)
    if f'database "{PREFIX}' not in text or "does not exist" not in text:
        return None
    name = text.split('"')[1]
    return (
        f"your database {name} no longer exists ('python -m coursedb stop' was run, or the server was "
        "reset), so the db_url you hold is stale; run the setup cell again (%%ipytest cells recover by themselves)."
    )


def course_fixtures_problem(start: Path) -> str | None:
    """None if a conftest.py with the course's fixtures is reachable from ``start`` upwards.

    pytest looks for conftest.py files from the test's folder up; %%ipytest cells run in the
    notebook's folder. A notebook saved elsewhere finds none, and every cell would fail with
    "fixture 'db_conn' not found".
    """
    for folder in [start, *start.parents]:
        conftest = folder / "conftest.py"
        try:
            if "def db_conn" in conftest.read_text(encoding="utf-8", errors="replace"):
                return None
        except OSError:
            continue
    return (
        f"this notebook runs in {start}, outside the course folder, so its %%ipytest cells cannot find the "
        "course's fixtures (fixture 'db_conn' not found); save it in the course's notebooks/ folder and reopen it."
    )
