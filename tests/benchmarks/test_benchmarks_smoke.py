"""Each benchmark runs at a tiny size and ends with a parseable JSON line.

No assertion here is about time: timing belongs in benchmarks/, run by hand, where it is
printed side by side. This only proves the scripts still work. Every benchmark that needs a
server for starting and stopping uses a private one in a throwaway COURSEDB_HOME; the others
use the run's own server (--shared) and drop what they create. None writes benchmarks/results/.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coursedb.paths import course_root

ROOT = course_root()
BENCH = ROOT / "benchmarks"

CASES = {
    # --shared: the run's own server (already up in CI) saves starting a private one.
    "isolation": (
        "--shared --tables 2 --rows 0 --budget 0.05 --min-n 2 --max-n 5 --warmup 1 --no-write",
        {"rollback_ms", "savepoint_ms", "truncate_ms", "template_db_ms", "template_db_over_rollback"},
    ),
    "backends": (
        "--cold 1 --reuse 1 --clones 1 --docker 1 --no-write",
        {"cold_start_ms", "reuse_ms", "stop_ms", "clone_ms", "testcontainers"},
    ),
    "pools": (
        "--shared --sizes 2 --tasks 1 4 --duration 0.05 --no-write",
        {"best_ops_per_s", "worst_acquire_p95_ms", "exhaustion_timed_out"},
    ),
    "suite": ("--dry-run", {"tests_s", "quick_s", "notebook_s", "nbval_s", "first_ipytest_s", "tests_before_s"}),
    # One learner runs notebook 00 on a private embedded server.
    "room": ("--quick", {"n", "failures", "peak_connections", "per_learner_peak"}),
    # Two private servers: this checkout's coursedb and the baseline commit's, one owner process each.
    "trust": ("--quick", {"reuse_ms", "take_ms"}),
    # One fresh kernel and one nbval run per plugin set, on a private server.
    "first_ipytest": ("--runs 1 --no-write", {"kernel_first_s", "nbval_first_s", "kernel_first_autoload_s"}),
    # One kernel on a private server: a later %%ipytest cell once per way of finding the kernel's plugins.
    "ipytest_runs": ("--runs 1 --no-write", {"kernel_cpu_s", "scanned_kernel_cpu_s", "scans_per_run"}),
    # Two fresh processes importing nbformat, as installed and without rfc3987_syntax.
    "imports": ("--runs 1 --no-write", {"nbformat_cpu_s", "nbformat_without_rfc3987_syntax_cpu_s"}),
    # One kernel on a private server with the outcomes table: checker 3.2 three times per way of recording.
    "checker_cost": ("--quick", {"record_file_ms", "record_room_ms", "cell_off_ms", "recorded_table"}),
}


def run_benchmark(name: str, args: str) -> dict:
    # No bound of its own: the item's time limit (pytest-timeout, stretched with the load by coursebook/limits.py)
    # ends a hang; a fixed 110 s failed the first_ipytest run (24 s idle) at load 10.
    done = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *args.split()], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr[-2000:]}"
    last = done.stdout.strip().splitlines()[-1]
    return json.loads(last)


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_and_prints_json(name):
    args, keys = CASES[name]
    summary = run_benchmark(name, args)
    assert keys <= summary.keys(), f"{name}: missing {keys - summary.keys()}"


def test_isolation_results_keep_the_shape_notebook_06_reads():
    # The committed full run is what the course plots; its shape is a contract.
    data = json.loads((BENCH / "results" / "isolation.json").read_text())
    assert {"machine", "results", "summary"} <= data.keys()
    first = data["results"][0]
    assert {"strategy", "tables", "rows", "median_ms", "p95_ms", "n"} <= first.keys()
    assert {r["strategy"] for r in data["results"]} >= {"rollback", "savepoint", "truncate", "template_db"}
    assert {"rollback_ms", "savepoint_ms", "truncate_ms", "template_db_ms"} <= data["summary"].keys()


def test_report_writes_a_table_and_plots(tmp_path):
    summary = run_benchmark("report", f"--out {tmp_path}")
    assert "isolation" in summary["results"]
    assert summary["plots"], "no plot was written"
    for plot in summary["plots"]:
        assert Path(plot).stat().st_size > 0
