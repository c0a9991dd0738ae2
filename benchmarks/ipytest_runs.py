"""What a later ``%%ipytest`` cell of a kernel costs, as the course runs it and without two of its savings.

    .venv/bin/python benchmarks/ipytest_runs.py             # 20 runs per way
    .venv/bin/python benchmarks/ipytest_runs.py --runs 3 --no-write

The course's ``%%ipytest`` names its pytest plugins with ``-p NAME`` (coursedb/notebook.py IPYTEST_ARGS, with
plugin autoload off). pytest resolves each ``-p NAME`` it has not registered by reading the entry points of
every installed distribution; the magic registers them by those names first (``KernelPlugins``), so no ``-p``
reads anything. Ways, taking turns, in two kernels (learner copies, a private embedded server), after two
warm-up runs in each:

- ``as the course runs it`` (kernel A): the magic registers the plugins by name; setup() froze what the
  kernel had loaded (``gc.freeze()``), so pytest's two garbage collections per run skip those objects;
- ``each -p resolved by pytest`` (kernel A): ``coursedb.notebook.PLUGIN_MODULES`` emptied for the run, so
  the magic registers nothing and pytest resolves every ``-p`` itself (the magic before it registered them);
- ``nothing frozen`` (kernel B): ``gc.unfreeze()`` right after setup(), so every collection walks every
  object of the kernel (setup() before it froze them).

Per run: the cell's wall time as the client sees it, the kernel process's CPU seconds (user + system, all
threads: psutil), and how many times ``importlib.metadata.distributions()`` was called in the kernel (a
counting wrapper set in the kernel). Medians; the load beside them. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import psutil
from _common import PrivateServer, finish, machine, run_cell, table  # puts the repository on sys.path
from jupyter_client.manager import start_new_kernel

from coursebook import learners

CELL = "%%ipytest\nasync def test_one(db_conn):\n    assert await db_conn.fetchval('SELECT 1') == 1\n"
PREPARE = """
from coursedb.notebook import setup
setup()
import importlib.metadata as _metadata, coursedb.notebook as _notebook, gc, os
_modules, _scans, _distributions = _notebook.PLUGIN_MODULES, [0], _metadata.distributions
def _counted(*args, **kwargs):
    _scans[0] += 1
    return _distributions(*args, **kwargs)
_metadata.distributions = _counted
print(os.getpid())
"""
# Each way: its kernel, the cell before the run, and the cell after it (back to the course's kernel).
WAYS = {
    "as the course runs it": ("A", "_scans[0] = 0", ""),
    "each -p resolved by pytest": (
        "A",
        "_notebook.PLUGIN_MODULES = {}; _scans[0] = 0",
        "_notebook.PLUGIN_MODULES = _modules",
    ),
    "nothing frozen": ("B", "_scans[0] = 0", ""),
}


def execute(client, code: str) -> str:
    reply, printed = run_cell(client, code)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"a cell failed: {printed[-1500:]}")
    return printed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="runs per way")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    samples: dict[str, list[tuple[float, float, int]]] = {way: [] for way in WAYS}
    loads = []
    with PrivateServer() as server, tempfile.TemporaryDirectory(prefix="ipytest-runs-") as tmp:
        server.start()
        folder = Path(tmp) / "room"
        learners.make(folder, ["00"])  # conftest.py and the pytest settings, as a learner has them
        kernels = {}
        try:
            for name in ("A", "B"):
                km, kc = start_new_kernel(kernel_name="python3", cwd=str(folder / "notebooks"), env=server.env())
                kernels[name] = km, kc
                pid = int(execute(kc, PREPARE + ("gc.unfreeze()\n" if name == "B" else "")).split()[-1])
                kernels[name] = km, kc, psutil.Process(pid)
                for _ in range(2):  # warm-up: the first run imports pytest and the plugins
                    execute(kc, CELL)
            for _ in range(args.runs):
                for way, (name, before, after) in WAYS.items():  # taking turns: load changes hit them alike
                    _, kc, kernel = kernels[name]
                    execute(kc, before)
                    cpu = sum(kernel.cpu_times()[:2])
                    began = time.perf_counter()
                    execute(kc, CELL)
                    wall = time.perf_counter() - began
                    cpu = sum(kernel.cpu_times()[:2]) - cpu
                    scans = int(execute(kc, "print(_scans[0])"))
                    execute(kc, after)
                    samples[way].append((wall, cpu, scans))
                loads.append(round(psutil.getloadavg()[0], 2))
            print(f"{args.runs} runs per way; load average (1 min) after each: {loads}", flush=True)
        finally:
            for km, kc, *_ in kernels.values():
                kc.stop_channels()
                km.shutdown_kernel(now=True)
    rows = []
    for way, values in samples.items():
        wall, cpu = (round(statistics.median(v[i] for v in values), 3) for i in (0, 1))
        rows.append({"way": way, "wall_s": wall, "kernel_cpu_s": cpu, "entry_point_scans": values[0][2]})
    print()
    headers = ["plugins", "wall s (median)", "kernel CPU s (median)", "entry-point scans per run"]
    print(table(headers, [[r["way"], r["wall_s"], r["kernel_cpu_s"], r["entry_point_scans"]] for r in rows]))
    document = {"benchmark": "ipytest_runs", "machine": machine({"runs": args.runs, "loads": loads}), "rows": rows}
    ours, scanned, unfrozen = rows
    summary = {
        "wall_s": ours["wall_s"],
        "kernel_cpu_s": ours["kernel_cpu_s"],
        "scanned_wall_s": scanned["wall_s"],
        "scanned_kernel_cpu_s": scanned["kernel_cpu_s"],
        "unfrozen_wall_s": unfrozen["wall_s"],
        "unfrozen_kernel_cpu_s": unfrozen["kernel_cpu_s"],
        "scans_per_run": ours["entry_point_scans"],
        "scanned_scans_per_run": scanned["entry_point_scans"],
    }
    finish("ipytest_runs", document, summary, write=not args.no_write)


if __name__ == "__main__":
    main()
