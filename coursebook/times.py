"""How long a notebook takes a learner, from a stated method rather than a guess.

A learner reads the prose, reads and runs every code cell and looks at its output, and works
every exercise (a first try, the checker's hint, a second try). So, per notebook:

    reading    words of Markdown / READING_WPM
    code       non-blank lines of code cells (checkers included, solutions not) / CODE_LINES_PER_MIN
    exercises  EXERCISE_MIN per exercise, or its own `minutes="N"` in the stub's cell header

rounded up to 5 minutes. The constants were set so that the 2026-11 version of notebooks 00-07
(9 exercises) comes to the 3.5-4 h that a learner who worked every exercise needed, measured;
the earlier figure, 2 h 10 min, left the exercises out. The build writes the figure into each
notebook's "*About N minutes.*" line, the README and the instructor guide.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from coursebook.cells import SOLUTION, CourseBookError, tags
from coursebook.model import ROOT, STATED_TIME, Notebook

READING_WPM = 200
CODE_LINES_PER_MIN = 20
EXERCISE_MIN = 10
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "instructor-guide.md"
BEGIN, END = "<!-- coursebook:times -->", "<!-- /coursebook:times -->"


@dataclass(frozen=True)
class LearnerTime:
    reading: float
    code: float
    exercises: float

    @property
    def minutes(self) -> int:
        return 5 * math.ceil((self.reading + self.code + self.exercises) / 5)


def learner_time(notebook: Notebook) -> LearnerTime:
    words = lines = 0
    for cell in notebook.cells:
        if SOLUTION in tags(cell):
            continue
        if cell.cell_type == "markdown":
            words += len(cell.source.split())
        elif cell.cell_type == "code":
            lines += sum(1 for line in cell.source.splitlines() if line.strip())
    exercise_min = sum(
        float(notebook.cells[ex.stub].metadata.get("minutes", EXERCISE_MIN)) for ex in notebook.exercises.values()
    )
    return LearnerTime(words / READING_WPM, lines / CODE_LINES_PER_MIN, exercise_min)


def hours(minutes: int) -> str:
    h, m = divmod(minutes, 60)
    return f"{h} h {m} min" if h else f"{m} min"


def table(notebooks: list[Notebook], link_prefix: str = "") -> str:
    rows = ["| notebook | reading | code | exercises (how many) | learner time |", "|---|---|---|---|---|"]
    total = 0
    for nb in notebooks:
        t = learner_time(nb)
        total += t.minutes
        name = f"[{nb.stem}]({link_prefix}{nb.book_path.name})" if link_prefix else nb.stem
        exercises = f"{t.exercises:.0f} min ({len(nb.exercises)})"
        rows.append(f"| {name} | {t.reading:.0f} min | {t.code:.0f} min | {exercises} | **{t.minutes} min** |")
    rows.append(f"| **total** | | | | **about {hours(total)}** |")
    method = (
        f"*Learner time* = prose at {READING_WPM} words/min + code at {CODE_LINES_PER_MIN} lines/min (read, run, "
        f"look at the output) + about {EXERCISE_MIN} min per exercise attempt, rounded up to 5 min; computed by "
        "`coursebook/times.py` from the notebooks themselves, so it follows every edit. Breaks not included."
    )
    return "\n".join(rows) + "\n\n" + method


def replace_block(text: str, block: str, where: Path) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), flags=re.DOTALL)
    if not pattern.search(text):
        raise CourseBookError(f"{where} has no {BEGIN} ... {END} block for the timings table.")
    return pattern.sub(lambda _: f"{BEGIN}\n{block}\n{END}", text)


def stated_source(notebook: Notebook) -> str:
    """The notebook's source text with its "*About N minutes.*" line set to the computed figure."""
    text = notebook.source_path.read_text()
    line = f"*About {learner_time(notebook).minutes} minutes.*"
    new, count = STATED_TIME.subn(line, text, count=1)
    if count != 1:
        raise CourseBookError(f"{notebook.source_path.name} has no '*About N minutes.*' line in its intro.")
    return new


def expected_files(notebooks: Iterable[Notebook]) -> dict[Path, str]:
    """Every file the timings are written into, with the text it must have."""
    notebooks = list(notebooks)
    files = {nb.source_path: stated_source(nb) for nb in notebooks}
    block = table(notebooks, link_prefix="notebooks/")
    files[README] = replace_block(README.read_text(), block, README)
    files[GUIDE] = replace_block(GUIDE.read_text(), table(notebooks, link_prefix="../notebooks/"), GUIDE)
    return files


def write(notebooks: Iterable[Notebook]) -> list[Path]:
    """Write the computed times where they are stated; returns the files that changed."""
    changed = []
    for path, text in expected_files(notebooks).items():
        if path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed
