"""Per-notebook timings for the instructor guide, as a Markdown table.

"Learning time" is what each notebook states. "Run All" is the wall-clock time of strict nbval on
that notebook alone with the server already running: roughly what a room waits for when everyone
presses Run All. The shared server is started first (not counted); notebooks run one at a time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable

from coursebook.commands import NBVAL_ARGS
from coursebook.model import ROOT, iter_notebooks


def main(prefixes: Iterable[str] = ()) -> int:
    subprocess.run([sys.executable, "-m", "coursedb", "start"], cwd=ROOT, check=True, capture_output=True)
    print("| notebook | learning time | Run All (nbval) | result |")
    print("|---|---|---|---|")
    for notebook in iter_notebooks(prefixes):
        begin = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *NBVAL_ARGS, "-q", "-p", "no:randomly",
             str(notebook.book_path.relative_to(ROOT))],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        took = time.monotonic() - begin
        summary = (result.stdout.strip().splitlines() or ["?"])[-1].strip("= ")
        stated = notebook.stated_minutes
        print(f"| {notebook.book_path.name} | {stated or '?'} min | {took:.0f} s | {summary} |", flush=True)
    return 0
