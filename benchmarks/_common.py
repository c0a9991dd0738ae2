"""Shared plumbing for the benchmarks: statistics, machine facts, tables, results files.

Every benchmark prints a readable table, writes ``benchmarks/results/<name>.json`` and
prints one JSON object as its LAST line, so scripts (and the smoke test) can read it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import coursedb  # installed into the course's .venv (requirements.txt: -e .)
from coursedb.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

# Other work on the machine inflates every number: the load when the run began and ended says how much.
LOAD_AT_START = round(os.getloadavg()[0], 2)


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
        "load_avg_1m": round(os.getloadavg()[0], 2),
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


def finish(name: str, document: dict, summary: dict, write: bool = True) -> None:
    """Write results/<name>.json (unless told not to) and print the summary as the last line."""
    if write:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {path.relative_to(ROOT)}")
    print(json.dumps(summary), flush=True)


# As root the server runs as the 'coursedb' system user, which must traverse the home.
_HOME_MODE = 0o711 if hasattr(os, "geteuid") and os.geteuid() == 0 else 0o700


@contextlib.contextmanager
def private_home() -> Iterator[tuple[Settings, dict[str, str]]]:
    """A throwaway COURSEDB_HOME with an embedded server of its own, stopped and removed afterwards.

    Benchmarks that start, stop or kill servers must never touch the shared one. The path is
    short because the Unix socket path inside it must stay under ~100 characters.
    """
    home = tempfile.mkdtemp(prefix="cdb", dir="/tmp")
    os.chmod(home, _HOME_MODE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEDB_")}
    env.update(COURSEDB_HOME=home, COURSEDB_BACKEND="embedded")
    settings = Settings.from_env(env)
    try:
        yield settings, env
    finally:
        try:
            coursedb.stop(settings)
        finally:
            shutil.rmtree(home, ignore_errors=True)


def fresh_home_for(settings: Settings) -> None:
    """Stop the private server and empty its home, so the next start is cold again."""
    coursedb.stop(settings)
    shutil.rmtree(settings.home, ignore_errors=True)
    Path(settings.home).mkdir(mode=0o700)
    os.chmod(settings.home, _HOME_MODE)
