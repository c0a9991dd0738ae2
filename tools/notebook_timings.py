"""Per-notebook timings for the instructor guide, as a Markdown table.

    .venv/bin/python tools/notebook_timings.py            every notebook
    .venv/bin/python tools/notebook_timings.py 00 03      only these

"Learning time" is what each notebook states ("*About N minutes.*"). "Run All" is the
wall-clock time of strict nbval on that notebook alone with the server already running:
roughly what a room waits for when everyone presses Run All. It starts the shared server
first (not counted), and runs notebooks one at a time so they do not compete for the CPU.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NBVAL = ["--nbval", "--nbval-sanitize-with", "notebooks/sanitize.cfg", "--nbval-cell-timeout", "300", "-q", "-p",
         "no:randomly"]  # fmt: skip


def stated_minutes(notebook: Path) -> str:
    source = NOTEBOOKS / "src" / (notebook.stem + ".py")
    match = re.search(r"About (\d+) minutes", source.read_text() if source.exists() else "")
    return match.group(1) if match else "?"


def main(prefixes: list[str]) -> int:
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        notebooks = [n for n in notebooks if any(n.name.startswith(p) for p in prefixes)]
    subprocess.run([sys.executable, "-m", "coursedb", "start"], cwd=ROOT, check=True, capture_output=True)
    print("| notebook | learning time | Run All (nbval) | result |")
    print("|---|---|---|---|")
    for notebook in notebooks:
        begin = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *NBVAL, str(notebook.relative_to(ROOT))],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        took = time.monotonic() - begin
        summary = (result.stdout.strip().splitlines() or ["?"])[-1].strip("= ")
        print(f"| {notebook.name} | {stated_minutes(notebook)} min | {took:.0f} s | {summary} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
