"""The maintainers' loop, before and after: the whole test command, --quick, one notebook's check, strict nbval
alone and the first %%ipytest cell, for this checkout and a checkout of a base commit, in one run.

    .venv/bin/python benchmarks/suite.py                       # everything, both checkouts (about an hour busy)
    .venv/bin/python benchmarks/suite.py --only notebook nbval first_ipytest
    .venv/bin/python benchmarks/suite.py --no-before           # this checkout only
    .venv/bin/python benchmarks/suite.py --dry-run             # print the commands, run nothing

The base checkout is a git worktree with a venv of its own (the commands below make it once):

    git worktree add /tmp/base-901231e 901231e && (cd /tmp/base-901231e && python3 course.py setup --dev)

Every command is that checkout's own ``python3 course.py test ...`` (its pytest, xdist and nbval
arguments, its own .venv), so what is measured is what people run there:

    tests          python3 course.py test                       the whole suite, every check (CI runs it)
    quick          python3 course.py test --quick               the authors' loop (what --quick is: course.py test -h)
    notebook       python3 course.py test notebooks/03_rollback_isolation.ipynb   one notebook's full check
    nbval          python3 course.py test --nbval-only notebooks/   strict nbval of every notebook, nothing else
    first_ipytest  a fresh kernel in the checkout's notebooks/: the setup cell, then the same %%ipytest cell
                   twice (an async test on db_conn); the first cell's seconds (the second's beside it)

"Cold": each command gets a fresh private COURSEDB_HOME with no server (coursebook.servers), so the
server start is part of the time, as on a fresh CI machine; the shared server is never touched. The two
checkouts alternate command by command, so background load hits both alike, and the load average is
printed beside every figure: at the start, the mean of samples every 5 s while it ran, and the most.
``tests`` takes /tmp/full-suite.lock (flock) once for both checkouts: one whole suite at a time on the machine.
``--only`` measures a subset and merges it into results/suite.json (other rows kept), so the whole-suite
pair can run (and wait for the lock) in one process while the rest runs in another.
Targets (idle 2 cores): tests <= 480 s, quick <= 120 s, one notebook <= 30 s, first %%ipytest <= 0.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import _common
from _common import ROOT

BASE_COMMIT = "901231e"
BASE_DIR = Path(f"/tmp/base-{BASE_COMMIT}")
LOCK = Path("/tmp/full-suite.lock")
NOTEBOOK = "notebooks/03_rollback_isolation.ipynb"
REPORT = ["-q", "--durations=25"]
COMMANDS = {
    "tests": ["test", *REPORT],
    "quick": ["test", "--quick", *REPORT],
    "notebook": ["test", *REPORT, NOTEBOOK],
    "nbval": ["test", *REPORT, "--nbval-only", "notebooks/"],
}
TAKES_THE_LOCK = {"tests"}
TARGETS_S = {"tests": 480.0, "quick": 120.0, "notebook": 30.0, "nbval": None, "first_ipytest": 0.5}
WHATS = [*COMMANDS, "first_ipytest"]
# pytest's closing line, with or without the ===== padding (-q drops it)
SUMMARY_LINE = re.compile(r"^=*\s*(\d+ (passed|failed|errors?|skipped).* in [\d.]+s.*?|no tests ran.*?)\s*=*$")
DURATION_LINE = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(.+?)\s*$")
# Run by the checkout's own venv Python (jupyter_client only): its kernel, its coursedb.notebook.setup().
FIRST_CELL = """
import json, sys, time
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name="python3", cwd=sys.argv[1])
try:
    seconds = []
    for code in sys.argv[2:]:
        t0 = time.perf_counter()
        reply = kc.execute_interactive(code, timeout=300, output_hook=lambda msg: None)
        seconds.append(time.perf_counter() - t0)
        if reply["content"]["status"] != "ok":
            raise SystemExit(f"a cell failed: {reply['content'].get('evalue')}")
    print(json.dumps(seconds))
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
"""
SETUP_CELL = "from coursedb.notebook import setup\nsetup()\n"
IPYTEST_CELL = "%%ipytest\nasync def test_one(db_conn):\n    assert await db_conn.fetchval('SELECT 1') == 1\n"


class Load(threading.Thread):
    """The 1-minute load average at the start, and sampled every 5 s until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples = [os.getloadavg()[0]]
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(5):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict:
        self.done.set()
        self.join()
        s = self.samples
        return {"start": round(s[0], 2), "mean": round(statistics.mean(s), 2), "max": round(max(s), 2)}


@contextlib.contextmanager
def full_suite_lock(what: str) -> Iterator[None]:
    """/tmp/full-suite.lock for a whole suite (others' full suites wait, and this waits for theirs)."""
    if what not in TAKES_THE_LOCK:
        yield
        return
    with LOCK.open("a") as handle:
        t0 = time.perf_counter()
        print(f"  {what}: waiting for {LOCK} ...", file=sys.stderr, flush=True)
        fcntl.flock(handle, fcntl.LOCK_EX)
        print(f"  {what}: got the lock after {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def command_line(checkout: Path, what: str) -> list[str]:
    if what == "first_ipytest":
        return [str(checkout / ".venv/bin/python"), "-c", "<FIRST_CELL>", "notebooks/", "<setup>", "%%ipytest x2"]
    return ["python3", "course.py", *COMMANDS[what]]


def timed(checkout: Path, label: str, what: str) -> dict:
    """One cold run of ``what`` in ``checkout`` on a fresh private home; the server is stopped afterwards."""
    with _common.PrivateServer() as server:
        env = server.env()
        load = Load()
        t0 = time.perf_counter()
        if what == "first_ipytest":
            python = str(checkout / ".venv/bin/python")
            args = [python, "-c", FIRST_CELL, str(checkout / "notebooks"), SETUP_CELL, IPYTEST_CELL, IPYTEST_CELL]
        else:
            args = ["python3", "course.py", *COMMANDS[what]]
        done = subprocess.run(args, cwd=checkout, env=env, capture_output=True, text=True, timeout=3600)
        seconds = time.perf_counter() - t0
        loads = load.stop()
    result = {"checkout": label, "commit": head_commit(checkout), "what": what, "seconds": round(seconds, 2)}
    result.update(exit=done.returncode, load=loads)
    if what == "first_ipytest":
        if done.returncode == 0:
            cells = json.loads(done.stdout.strip().splitlines()[-1])
            result.update(seconds=round(cells[1], 3), second_s=round(cells[2], 3), outcome="ran")
        else:
            result.update(seconds=None, outcome=(done.stderr.strip().splitlines() or ["no output"])[-1])
        return result
    found = [m.group(1) for m in map(SUMMARY_LINE.search, done.stdout.splitlines()) if m]
    result["outcome"] = found[-1] if found else (done.stdout.strip().splitlines() or ["no output"])[-1]
    result["slowest"] = [
        f"{m.group(1)}s {m.group(2)} {m.group(3)}" for m in map(DURATION_LINE.search, done.stdout.splitlines()) if m
    ]
    return result


def merged(document: dict, measured: set[str]) -> tuple[dict, dict]:
    """``document`` with the rows of results/suite.json that this run did not measure; the summary again."""
    try:
        old = json.loads((_common.RESULTS / "suite.json").read_text())
        kept = [r for r in old.get("results", []) if r.get("what") not in measured and "checkout" in r]
    except (OSError, ValueError):
        kept = []  # no earlier results of this shape: this run's alone
    results = kept + document["results"]
    summary = summarize(results, document["summary"]["commits"])
    return document | {"results": results, "summary": summary}, summary


def summarize(results: list[dict], commits: dict) -> dict:
    """Each figure's median per checkout (``<what>_s`` after, ``<what>_before_s`` before) and its target."""
    summary = {"commits": commits, "all_green": all(r["exit"] == 0 for r in results)}
    for what in WHATS:
        for label, key in (("after", f"{what}_s"), ("before", f"{what}_before_s")):
            times = [r["seconds"] for r in results if r["what"] == what and r["checkout"] == label]
            summary[key] = round(statistics.median(times), 3) if times and None not in times else None
        summary[f"{what}_target_s"] = TARGETS_S[what]
    return summary


def head_commit(checkout: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    return done.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=WHATS, nargs="+", help="measure only these")
    parser.add_argument("--before", type=Path, default=BASE_DIR, help=f"the base checkout (default {BASE_DIR})")
    parser.add_argument("--no-before", action="store_true", help="measure this checkout only")
    parser.add_argument("--after-first", action="store_true", help="this checkout first in each pair")
    parser.add_argument("--runs", type=int, default=1, help="runs of each (notebook, nbval, first_ipytest)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and run nothing")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/suite.json")
    args = parser.parse_args(argv)
    whats = args.only or WHATS
    checkouts = {"after": ROOT} if args.no_before else {"before": args.before, "after": ROOT}
    if args.after_first:
        checkouts = dict(reversed(checkouts.items()))

    if args.dry_run:
        for label, checkout in checkouts.items():
            for what in whats:
                print(f"{label} {what}: (cd {checkout} && {' '.join(command_line(checkout, what))})")
        summary: dict = {f"{w}_s": None for w in WHATS} | {f"{w}_before_s": None for w in WHATS}
        _common.finish("suite", {}, summary | {"dry_run": True}, write=False)
        return 0
    missing = [str(c) for c in checkouts.values() if not (c / ".venv/bin/python").exists()]
    if missing:
        print(f"suite: no checkout with a .venv at {', '.join(missing)}; make it with the commands in --help, "
              "or pass --no-before.", file=sys.stderr)  # fmt: skip
        return 2

    results = []
    for what in whats:  # the checkouts alternate, so background load hits both alike
        for run in range(1 if what in TAKES_THE_LOCK else args.runs):
            with full_suite_lock(what):
                for label, checkout in checkouts.items():
                    result = timed(checkout, label, what) | {"run": run + 1}
                    results.append(result)
                    ld = result["load"]
                    said = f"{result['seconds']} s, {result['outcome']}"
                    print(f"  {label} {what}: {said} (load {ld['start']} at start, mean {ld['mean']}, max {ld['max']})",
                          file=sys.stderr, flush=True)  # fmt: skip
                    print(f"  row: {json.dumps(result)}", file=sys.stderr, flush=True)  # kept if a later row fails

    commits = {label: head_commit(checkout) for label, checkout in checkouts.items()}
    print(
        f"\nThe maintainers' loop, cold, {os.cpu_count()} cores: " + ", ".join(f"{k} = {v}" for k, v in commits.items())
    )
    rows = []
    for r in results:
        ld = r["load"]
        rows.append(
            (r["what"], r["checkout"], r["seconds"], f"{ld['start']} / {ld['mean']} / {ld['max']}", r["outcome"])
        )
    print(_common.table(["what", "checkout", "seconds", "load start / mean / max", "outcome"], rows))
    summary = summarize(results, commits)
    for r in results:
        if r.get("slowest"):
            print(f"\n{r['checkout']} {r['what']}: the slowest items\n  " + "\n  ".join(r["slowest"][:12]))
    machine = _common.machine({"commands": {w: " ".join(command_line(Path("."), w)) for w in WHATS}})
    document = {"machine": machine, "results": results, "summary": summary}
    if args.only and not args.no_write:
        document, summary = merged(document, set(whats))
    _common.finish("suite", document, summary, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
