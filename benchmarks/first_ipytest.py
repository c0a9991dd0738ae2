"""How long a notebook's first ``%%ipytest`` cell takes, and its second: in a kernel as a learner runs it, and
under nbval; with the plugins the course's kernel loads (coursedb.notebook.IPYTEST_ARGS) beside every
installed pytest plugin (autoload, what ipytest does by default).

Each run starts a fresh kernel in a folder of learner copies on a private embedded server, runs the setup
cell, then the same ``%%ipytest`` cell twice (an async test on ``db_conn``); the nbval rows run a
three-cell notebook of the same cells under ``pytest --nbval-lax`` and read each cell's time from
``--durations``. Variants alternate, so load hits both alike. Nothing here asserts.

    .venv/bin/python benchmarks/first_ipytest.py              # 5 runs of each
    .venv/bin/python benchmarks/first_ipytest.py --runs 1 --no-write
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PrivateServer, finish, machine, table  # puts the repository on sys.path

from coursebook import learners
from coursebook.model import KERNEL
from coursedb.notebook import AUTOLOAD_OFF, IPYTEST_ARGS

CELL = "%%ipytest\nasync def test_one(db_conn):\n    assert await db_conn.fetchval('SELECT 1') == 1\n"
VARIANTS = {
    "course's plugins": IPYTEST_ARGS,
    "every plugin (autoload)": [arg for arg in IPYTEST_ARGS if arg != AUTOLOAD_OFF],
}
DURATION = re.compile(r"^([\d.]+)s call\s+\S+::Cell (\d+)$")


def setup_cell(args: list[str]) -> str:
    configure = f"ipytest.config(addopts={args!r}, coverage=False)"
    return f"from coursedb.notebook import setup\nsetup()\nimport ipytest\n{configure}\n"


def in_kernel(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds of the first and the second %%ipytest cell in a fresh kernel."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)
    try:
        times = []
        for code in (setup_cell(args), CELL, CELL):
            t0 = time.perf_counter()
            reply = kc.execute_interactive(code, timeout=300, output_hook=lambda msg: None)
            times.append(time.perf_counter() - t0)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"a cell failed: {reply['content'].get('evalue')}")
        return times[1], times[2]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def under_nbval(args: list[str], folder: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds of the first and the second %%ipytest cell of a notebook run by nbval."""
    import nbformat

    path = folder / "notebooks" / "first_ipytest.ipynb"
    cells = [nbformat.v4.new_code_cell(code) for code in (setup_cell(args), CELL, CELL)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNEL}), path)
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:xdist", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "-q", "--durations=0", "--durations-min=0", str(path)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = {int(m.group(2)): float(m.group(1)) for m in map(DURATION.match, done.stdout.splitlines()) if m}
    if done.returncode != 0 or not {1, 2} <= set(seconds):
        raise RuntimeError(f"nbval run failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return seconds[1], seconds[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    loads = []
    with PrivateServer() as server, tempfile.TemporaryDirectory(prefix="first-ipytest-") as tmp:
        server.start()
        env = server.env()
        folder = Path(tmp) / "room"
        learners.make(folder, ["00"])  # conftest.py and the pytest settings, as a learner has them
        for run in range(args.runs):
            for name, variant in VARIANTS.items():
                samples.setdefault((name, "kernel"), []).append(in_kernel(variant, folder / "notebooks", env))
                samples.setdefault((name, "nbval"), []).append(under_nbval(variant, folder, env))
            loads.append(round(os.getloadavg()[0], 2))
            print(f"run {run + 1}/{args.runs} done (load {loads[-1]})", flush=True)
    rows = []
    for (name, where), pairs in samples.items():
        first, second = (statistics.median(p[i] for p in pairs) for i in (0, 1))
        rows.append({"plugins": name, "where": where, "first_s": round(first, 3), "second_s": round(second, 3)})
    print()
    headers = ["plugins", "where", "first %%ipytest s", "second s"]
    print(table(headers, [[r["plugins"], r["where"], r["first_s"], r["second_s"]] for r in rows]))
    print(f"medians of {args.runs} fresh kernels each; load average (1 min) after each run: {loads}")
    document = {"benchmark": "first_ipytest", "machine": machine({"runs": args.runs, "loads": loads}), "rows": rows}
    ours = {r["where"]: r["first_s"] for r in rows if r["plugins"] == "course's plugins"}
    every = {r["where"]: r["first_s"] for r in rows if r["plugins"] != "course's plugins"}
    summary = {"kernel_first_s": ours["kernel"], "nbval_first_s": ours["nbval"]}
    summary |= {"kernel_first_autoload_s": every["kernel"], "nbval_first_autoload_s": every["nbval"]}
    finish("first_ipytest", document, summary, write=not args.no_write)


if __name__ == "__main__":
    main()
