"""Shared plumbing for the benchmarks: statistics, machine facts, tables, results files.

Every benchmark prints a readable table, writes ``benchmarks/results/<name>.json`` and
prints one JSON object as its LAST line, so scripts (and the smoke test) can read it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence

import coursedb  # installed into the course's .venv (requirements.txt: -e .)
from coursedb.paths import benchmark_results, course_root
from coursedb.platform import load_average
from coursedb.settings import Settings

ROOT = course_root()
RESULTS = benchmark_results("any").parent
# coursebook is authoring code, imported from the repository (not installed): a script in benchmarks/
# has only its own folder on sys.path.
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))
from coursebook.servers import PrivateServer  # noqa: E402

__all__ = ["ROOT", "PrivateServer", "Settings", "coursedb", "finish", "machine", "median_ms", "p95_ms", "table"]

# Other work on the machine inflates every number: the load when the run began and ended says how much.
LOAD_AT_START = load_average()


def median_ms(samples: Sequence[float]) -> float:
    """Median of samples given in seconds, in milliseconds."""
    return round(statistics.median(samples) * 1000, 3) if samples else float("nan")


def p95_ms(samples: Sequence[float]) -> float:
    """95th percentile (nearest rank) of samples in seconds, in milliseconds."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] * 1000, 3)


def machine(extra: dict | None = None) -> dict:
    """Facts a reader needs to judge the numbers: cores, load, versions, when."""
    info = {
        "cpus": os.cpu_count(),
        "load_avg_1m_start": LOAD_AT_START,
        "load_avg_1m": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    info.update(extra or {})
    return info


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table, right-aligned numbers."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(lines)


def run_cell(client, code: str) -> tuple[dict, str]:
    """Run ``code`` in a Jupyter kernel through its blocking client: the execute reply, and what the code printed
    (stream text, an error's value) in order."""
    out: list[str] = []

    def collect(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(msg["content"]["evalue"])

    reply = client.execute_interactive(code, output_hook=collect, timeout=300)
    return reply, "".join(out)


def finish(name: str, document: dict, summary: dict, write: bool = True) -> None:
    """Write results/<name>.json (unless told not to) and print the summary as the last line."""
    if write:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {path.relative_to(ROOT)}")
    print(json.dumps(summary), flush=True)
