"""The course's own speed: all notebooks verified by strict nbval, and the reference test suite, cold.

    .venv/bin/python benchmarks/suite.py             # 3 runs of each, median (a few minutes)
    .venv/bin/python benchmarks/suite.py --quick     # 1 run of each
    .venv/bin/python benchmarks/suite.py --dry-run   # print the commands, run nothing

"Cold" means every run gets a fresh private COURSEDB_HOME with no server, so the server
start, the course template and each worker's database are part of the time, as on a
fresh CI machine. The shared server is never touched. The commands are the ones CI runs:

    notebooks   pytest --nbval --nbval-sanitize-with notebooks/sanitize.cfg notebooks/
                       -n auto --dist loadfile -p no:cacheprovider
    tests       pytest tests/ -n auto -m "not slow" -p no:cacheprovider
                       (without tests/test_benchmarks_smoke.py, which runs these benchmarks)

Targets: notebooks <= 60 s (aim 30 s, issue 4), reference suite <= 15 s (issue 3).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

import _common
from _common import ROOT

PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
COMMANDS = {
    "notebooks": [*PYTEST, "--nbval", "--nbval-sanitize-with", "notebooks/sanitize.cfg", "notebooks/",
                  "-n", "auto", "--dist", "loadfile"],
    "tests": [*PYTEST, "tests/", "-n", "auto", "-m", "not slow", "--ignore=tests/test_benchmarks_smoke.py"],
}  # fmt: skip
TARGETS_S = {"notebooks": 60.0, "tests": 15.0}
SUMMARY_LINE = re.compile(r"=+ (.*(passed|failed|error|skipped|no tests ran).*) =+\s*$")


def timed_run(what: str) -> dict:
    """One cold run of a command in a fresh private home; the server is stopped afterwards."""
    with _common.private_home() as (_settings, env):
        t0 = time.perf_counter()
        done = subprocess.run(COMMANDS[what], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - t0
    lines = [SUMMARY_LINE.search(ln) for ln in done.stdout.splitlines()]
    outcome = next((m.group(1) for m in reversed(lines) if m), done.stdout.strip().splitlines()[-1:])
    return {"what": what, "seconds": round(seconds, 2), "exit": done.returncode, "outcome": str(outcome)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="cold runs of each command")
    parser.add_argument("--quick", action="store_true", help="one run of each")
    parser.add_argument("--only", choices=sorted(COMMANDS), help="measure one of the two")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and run nothing")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/suite.json")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    whats = [args.only] if args.only else list(COMMANDS)
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

    if args.dry_run:
        for what in whats:
            print(f"{what}: {' '.join(COMMANDS[what][1:])}")
        summary = {"notebooks_cold_s": None, "tests_cold_s": None, "notebooks": len(notebooks), "dry_run": True}
        _common.finish("suite", {}, summary, write=False)
        return 0

    results = []
    for i in range(runs):  # alternate the two, so background load hits both alike
        for what in whats:
            result = timed_run(what)
            result["run"] = i + 1
            results.append(result)
            print(f"  {what} run {i + 1}: {result['seconds']:.1f} s, {result['outcome']}", file=sys.stderr, flush=True)

    print(f"\nThe course, cold (fresh server each run), {len(notebooks)} notebooks, {runs} run(s)\n")
    rows = [(r["what"], r["run"], r["seconds"], r["exit"], r["outcome"]) for r in results]
    print(_common.table(["what", "run", "seconds", "exit", "pytest says"], rows))
    summary: dict = {"notebooks": len(notebooks), "runs": runs, "all_green": all(r["exit"] == 0 for r in results)}
    for what in COMMANDS:
        times = [r["seconds"] for r in results if r["what"] == what]
        summary[f"{what}_cold_s"] = round(statistics.median(times), 2) if times else None
        summary[f"{what}_target_s"] = TARGETS_S[what]
    print(
        f"\nmedians: notebooks {summary['notebooks_cold_s']} s (target <= 60, aim 30), "
        f"tests {summary['tests_cold_s']} s (target <= 15)"
    )
    machine = _common.machine(
        {"notebook_files": notebooks, "commands": {k: " ".join(v[1:]) for k, v in COMMANDS.items()}}
    )
    document = {"machine": machine, "results": results, "summary": summary}
    _common.finish("suite", document, summary, write=not (args.no_write or args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
