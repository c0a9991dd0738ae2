"""What recording a checker run's outcome adds to a checker cell, in a real kernel.

    .venv/bin/python benchmarks/checker_cost.py             # 3 ways × 40 runs of checker 3.2
    .venv/bin/python benchmarks/checker_cost.py --quick     # 3 ways × 3 runs (no results file)

One kernel, started in notebooks/ on a private embedded server that has the room's outcomes table, runs
notebook 03's setup, the model answer of exercise 3.2, then its checker cell (``%%ipytest --exercise 3.2``)
again and again, the three ways of recording taking turns in a shuffled order (the environment is read
at every run):

- ``off``: ``COURSEDB_PROGRESS=off``, nothing recorded (the baseline);
- ``file``: the laptop's file store (one appended line);
- ``room``: the outcomes table, through the owner's keeper session (queued in the cell, sent in the
  keeper's thread).

Two figures per way: the time ``progress.record()`` takes inside the cell, measured in the kernel around
each call (the cost the issue bounds at 10 ms), and the whole cell's wall time as the client sees it
(for scale: the checker's own tests dominate it). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time

import asyncpg
from _common import ROOT, PrivateServer, finish, machine, median_ms, p95_ms, run_cell, table
from jupyter_client.manager import KernelManager

from coursebook.model import iter_notebooks
from coursedb import progress

WAYS = ("off", "file", "room")
SPY = """
import os, time, json
import coursedb.progress as _progress
_record, _spent = _progress.record, []
def _timed(*args, **kwargs):
    began = time.perf_counter()
    _record(*args, **kwargs)
    _spent.append(time.perf_counter() - began)
_progress.record = _timed
"""


def run(client, code: str) -> tuple[float, str]:
    began = time.perf_counter()
    _, printed = run_cell(client, code)
    return time.perf_counter() - began, printed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40, help="checker runs per way")
    parser.add_argument("--quick", action="store_true", help="3 runs per way; writes nothing")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.no_write = 3, True
    (notebook,) = iter_notebooks(["03"])
    exercise = notebook.exercises["3.2"]
    checker = notebook.cells[exercise.checker].source
    with PrivateServer() as private, tempfile.TemporaryDirectory() as folder:
        admin_url = private.start()["admin_url"]

        async def make_table() -> None:
            conn = await asyncpg.connect(admin_url)
            try:
                await progress.create_table(conn)
            finally:
                await conn.close()

        asyncio.run(make_table())
        env = private.env(COURSEDB_PROGRESS="off")
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel(cwd=str(ROOT / "notebooks"), env=env)
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=120)
            for code in ("from coursedb.notebook import setup\n\ndb_url = setup()", SPY,
                         notebook.cells[exercise.solution].source):  # fmt: skip
                run(client, code)
            run(client, checker)  # warm-up: pytest's and Hypothesis's first imports
            walls: dict[str, list[float]] = {way: [] for way in WAYS}
            order = random.Random(7)
            for _ in range(args.runs):
                for way in order.sample(WAYS, len(WAYS)):  # a shuffled turn: no way always runs after another
                    value = {"off": "'off'", "file": repr(folder), "room": None}[way]
                    switch = "os.environ.pop('COURSEDB_PROGRESS', None)" if value is None else (
                        f"os.environ['COURSEDB_PROGRESS'] = {value}"
                    )  # fmt: skip
                    run(client, f"{switch}\n_spent.clear()")
                    wall, _ = run(client, checker)
                    walls[way].append(wall)
                    _, spent = run(client, "print(json.dumps(_spent))")
                    walls.setdefault(f"{way}:record", []).extend(json.loads(spent.strip().splitlines()[-1]))
            _, flushed = run(client, "print(_progress.flush(10))")
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)

        async def count() -> int:
            conn = await asyncpg.connect(admin_url)
            try:
                return await conn.fetchval(f"SELECT count(*) FROM {progress.TABLE}")
            finally:
                await conn.close()

        in_table = asyncio.run(count())
        in_file = len(progress.FileStore(folder).read())

    rows = []
    for way in WAYS:
        spent = walls.get(f"{way}:record", [])
        rows.append((way, len(walls[way]), median_ms(spent) if spent else 0.0, p95_ms(spent) if spent else 0.0,
                     median_ms(walls[way]), round((statistics.median(walls[way]) - statistics.median(walls["off"]))
                                                  * 1000, 1)))  # fmt: skip
    print(f"\nchecker 3.2 (model answer), {args.runs} runs per way, in one kernel; recorded: file {in_file}, "
          f"table {in_table}, flushed {flushed.strip()}")  # fmt: skip
    print(table(["way", "runs", "record() median ms", "record() p95 ms", "cell median ms", "cell vs off ms"], rows))
    summary = {
        "runs": args.runs,
        "record_file_ms": rows[1][2],
        "record_file_p95_ms": rows[1][3],
        "record_room_ms": rows[2][2],
        "record_room_p95_ms": rows[2][3],
        "cell_off_ms": rows[0][4],
        "cell_file_ms": rows[1][4],
        "cell_room_ms": rows[2][4],
        "recorded_file": in_file,
        "recorded_table": in_table,
    }
    finish("checker_cost", {"machine": machine(), "summary": summary}, summary, write=not args.no_write)


if __name__ == "__main__":
    main()
