"""The course's own speed: strict nbval alone, every notebook check, the reference suite, the whole test command, cold.

    .venv/bin/python benchmarks/suite.py             # 3 runs each (1 of the whole command), median; 10+ minutes
    .venv/bin/python benchmarks/suite.py --quick     # 1 run of each, results not written
    .venv/bin/python benchmarks/suite.py --runs 1 --only notebooks book   # 1 run each, written
    .venv/bin/python benchmarks/suite.py --only notebooks tests
    .venv/bin/python benchmarks/suite.py --dry-run   # print the commands, run nothing

"Cold" means every run gets a fresh private COURSEDB_HOME with no server, so the server
start, the course template and each worker's database are part of the time, as on a
fresh CI machine. The shared server is never touched. Every command is `course.py test`
(its pytest, xdist and nbval arguments), so what is measured is what people run:

    notebooks   python3 course.py test --nbval-only notebooks/    all notebooks under strict nbval, nothing else
    book        python3 course.py test notebooks/           each notebook's one kernel run: strict nbval, Run All
                       again with every wrong answer and solution, each cell twice, the connection budget
    reference   python3 course.py test <reference files>    the article's tests and coursedb's own tests
                       (tests/reference/, tests/coursedb/test_coursedb_*.py: the "reference suite")
    tests       python3 course.py test                      the whole test command (CI runs exactly this)
    quick       python3 course.py test --quick              the authors' loop: no launch checks, no benchmark smoke

Targets: notebooks <= 60 s (aim 30 s), reference suite <= 15 s, the whole command <= 50 s on an
idle 2-core machine. `tests` and `notebooks` run side by side
(alternating), so their ratio holds even on a busy machine.
Each run also lists where the time goes per file (pytest --durations=0, summed).
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

COURSE_TEST = [sys.executable, "course.py", "test"]
REPORT = ["-q", "--durations=0"]
REFERENCE = [
    "test_seed_examples.py",
    "test_isolation.py",
    "test_shop.py",
    "test_fixture_mutation.py",
    "test_coursedb_*.py",
]


def reference_files() -> list[str]:
    found = {p for pattern in REFERENCE for p in (ROOT / "tests").rglob(pattern)}
    return [str(p.relative_to(ROOT)) for p in sorted(found)]


COMMANDS = {
    "notebooks": [*COURSE_TEST, *REPORT, "--nbval-only", "notebooks/"],
    "book": [*COURSE_TEST, *REPORT, "notebooks/"],
    "reference": [*COURSE_TEST, *REPORT, *reference_files()],
    "tests": [*COURSE_TEST, *REPORT],
    "quick": [*COURSE_TEST, "--quick", *REPORT],
}
DURATION_LINE = re.compile(r"^([\d.]+)s (?:setup|call|teardown)\s+([^:\s]+)::")
TARGETS_S = {"notebooks": 60.0, "book": None, "reference": 15.0, "tests": 50.0, "quick": None}
# pytest's closing line, with or without the ===== padding (-q drops it)
SUMMARY_LINE = re.compile(r"^=*\s*(\d+ (passed|failed|errors?|skipped).* in [\d.]+s.*?|no tests ran.*?)\s*=*$")


def timed_run(what: str) -> dict:
    """One cold run of a command in a fresh private home; the server is stopped afterwards."""
    with _common.PrivateServer() as server:
        t0 = time.perf_counter()
        done = subprocess.run(COMMANDS[what], cwd=ROOT, env=server.env(), capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - t0
    found = [m.group(1) for m in map(SUMMARY_LINE.search, done.stdout.splitlines()) if m]
    outcome = found[-1] if found else (done.stdout.strip().splitlines() or ["no output"])[-1]
    per_file: dict[str, float] = {}  # where the time goes: --durations=0 lists every phase of every item
    for m in map(DURATION_LINE.search, done.stdout.splitlines()):
        if m:
            per_file[m.group(2)] = per_file.get(m.group(2), 0.0) + float(m.group(1))
    slowest = dict(sorted(((k, round(v, 2)) for k, v in per_file.items()), key=lambda kv: -kv[1]))
    return {
        "what": what,
        "seconds": round(seconds, 2),
        "exit": done.returncode,
        "outcome": outcome,
        "seconds_per_file": slowest,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="cold runs of each command")
    parser.add_argument("--quick", action="store_true", help="one run of each")
    parser.add_argument("--only", choices=sorted(COMMANDS), nargs="+", help="measure only these")
    parser.add_argument("--tests-runs", type=int, default=1, help="cold runs of the whole command and --quick")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and run nothing")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/suite.json")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    whats = args.only or list(COMMANDS)
    listed = subprocess.run([sys.executable, "-m", "coursebook", "list"], cwd=ROOT, capture_output=True, text=True)
    notebooks = listed.stdout.split()

    if args.dry_run:
        for what in whats:
            print(f"{what}: python3 {' '.join(COMMANDS[what][1:])}")
        summary = {f"{w}_cold_s": None for w in COMMANDS}
        summary.update(notebooks=len(notebooks), dry_run=True)
        _common.finish("suite", {}, summary, write=False)
        return 0

    results = []
    for i in range(runs):  # alternate, so background load hits each alike
        for what in whats:
            if what in ("tests", "quick", "book") and i >= args.tests_runs:
                continue
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
    for what in whats:
        files: dict[str, list[float]] = {}
        for r in results:
            if r["what"] == what:
                for name, sec in r["seconds_per_file"].items():
                    files.setdefault(name, []).append(sec)
        top = sorted(((statistics.median(v), k) for k, v in files.items()), reverse=True)[:8]
        if top:
            print(f"\n{what}: time spent per file (median over runs, summed over items; workers run in parallel)\n")
            print(_common.table(["file", "seconds"], [(k, round(v, 2)) for v, k in top]))
    print(
        f"\nmedians: notebooks {summary['notebooks_cold_s']} s (target <= 60, aim 30), "
        f"every notebook check {summary['book_cold_s']} s, "
        f"reference suite {summary['reference_cold_s']} s (target <= 15), "
        f"python3 course.py test {summary['tests_cold_s']} s (target <= 50), --quick {summary['quick_cold_s']} s"
    )
    machine = _common.machine(
        {"notebook_files": notebooks, "commands": {k: "python3 " + " ".join(v[1:]) for k, v in COMMANDS.items()}}
    )
    document = {"machine": machine, "results": results, "summary": summary}
    _common.finish("suite", document, summary, write=not (args.no_write or args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
