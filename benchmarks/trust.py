"""What trusting the shared server costs: database_url() reuse, db_conn's commit guard, synchronous_commit.

    .venv/bin/python benchmarks/trust.py                       # against the code before the change (901231e)
    .venv/bin/python benchmarks/trust.py --baseline <commit>   # against another commit
    .venv/bin/python benchmarks/trust.py --quick               # fewer samples, ~30 s, writes nothing

Side by side in one run, each on a private embedded server of its own:

    take        a new owner's first database_url() while the server runs (sweep, clone, comment)
    reuse       database_url() again in the same process (a kernel's every %%ipytest cell)
    db_conn     one test's fixture cycle as conftest.py runs it (acquire, guard, BEGIN, an INSERT,
                ROLLBACK, the guard's check, release), with 0 and with 100 rows the learner
                committed before the test
    commit      one autocommitted INSERT, synchronous_commit off and on (the server runs with
                fsync off, so "on" writes the WAL before acknowledging but never waits for a disk)

"now" is this checkout's coursedb; "before" is the --baseline commit's coursedb, extracted to a
temporary folder (same Python, same packages). Rounds alternate between them, so background load
hits both alike. Nothing asserts; the figures are printed and written to results/trust.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from _common import ROOT, PrivateServer, finish, machine, median_ms, table

CHILD = r"""
import asyncio, json, sys, time
import asyncpg, coursedb
from coursedb import fixtures

rounds, learner_rows = int(sys.argv[1]), int(sys.argv[2])
started = time.perf_counter()
url = coursedb.database_url()
take = time.perf_counter() - started
reuse = []
for _ in range(rounds):
    started = time.perf_counter()
    coursedb.database_url()
    reuse.append(time.perf_counter() - started)


async def cycle(pool):
    async with pool.acquire() as conn:
        before = await fixtures.Before.take(conn) if hasattr(fixtures, "Before") else None
        transaction = conn.transaction()
        await transaction.start()
        guard = await (fixtures.CommitGuard.start(conn, before) if before else fixtures.CommitGuard.start(conn))
        await conn.execute("INSERT INTO users (email, name) VALUES ('t@example.com', 'T')")
        ended = await guard.transaction_ended()
        await transaction.rollback()
        assert await guard.leftovers(ended) is None


async def guard_cycles():
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, init=coursedb.init_connection)
    samples = {}
    try:
        for rows in (0, learner_rows):
            await pool.execute("TRUNCATE users CASCADE")
            await pool.executemany("INSERT INTO users (email, name) VALUES ($1, 'L')",
                                   [(f"l{i}@example.com",) for i in range(rows)])
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                await cycle(pool)
                times.append(time.perf_counter() - started)
            samples[rows] = times
        commits = {}
        async with pool.acquire() as conn:
            for mode in ("off", "on") * 2:
                await conn.execute(f"SET synchronous_commit = {mode}")
                for _ in range(rounds):
                    started = time.perf_counter()
                    await conn.execute("INSERT INTO events (kind) VALUES ('commit')")
                    commits.setdefault(mode, []).append(time.perf_counter() - started)
    finally:
        await pool.close()
    return samples, commits


samples, commits = asyncio.run(guard_cycles())
print(json.dumps({"take": take, "reuse": reuse, "db_conn": samples, "commit": commits}))
"""


def extract(commit: str, into: Path) -> Path:
    """The coursedb package as it was at ``commit``, in a folder of its own."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "coursedb"], capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(server: PrivateServer, code: Path, rounds: int, learner_rows: int) -> dict:
    """One child process of the given coursedb on ``server``: an owner, as a kernel is."""
    env = server.env(PYTHONPATH=str(code))
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(rounds), str(learner_rows)],
        env=env, cwd=code, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"the measurement failed ({code}): {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="901231e", help="the commit to compare with (default 901231e)")
    parser.add_argument("--quick", action="store_true", help="fewer samples (never writes results/)")
    parser.add_argument("--no-write", action="store_true", help="do not write results/trust.json")
    args = parser.parse_args()
    rounds, repeats, learner_rows = (20, 1, 100) if args.quick else (200, 5, 100)
    samples: dict[str, dict] = {"now": {}, "before": {}}
    with tempfile.TemporaryDirectory(prefix="cdbtrust") as tmp, PrivateServer() as now_server, PrivateServer() as old:
        codes = {"now": ROOT, "before": extract(args.baseline, Path(tmp))}
        servers = {"now": now_server, "before": old}
        for side in ("now", "before"):
            started = subprocess.run([sys.executable, "-m", "coursedb", "start"], env=servers[side].env(
                PYTHONPATH=str(codes[side])), cwd=codes[side], capture_output=True, text=True, timeout=300)  # fmt: skip
            if started.returncode != 0:
                raise SystemExit(f"the {side} server did not start: {started.stderr.strip()}")
        for _ in range(repeats):
            for side in ("now", "before"):
                got = measure(servers[side], codes[side], rounds, learner_rows)
                into = samples[side]
                into.setdefault("take", []).append(got["take"])
                into.setdefault("reuse", []).extend(got["reuse"])
                for rows, times in got["db_conn"].items():
                    into.setdefault(f"db_conn, {rows} learner rows", []).extend(times)
                for mode, times in got["commit"].items():
                    into.setdefault(f"commit, synchronous_commit {mode}", []).extend(times)
    figures = {side: {what: median_ms(times) for what, times in found.items()} for side, found in samples.items()}
    rows = [(what, figures["before"][what], figures["now"][what]) for what in figures["now"]]
    print(f"medians in ms; before = {args.baseline}, now = this checkout; {repeats} processes each")
    print(table(["measure", "before", "now"], rows))
    document = {"machine": machine({"baseline": args.baseline, "rounds": rounds, "repeats": repeats}), **figures}
    summary = {"reuse_ms": figures["now"]["reuse"], "take_ms": figures["now"]["take"]}
    finish("trust", document, summary, write=not (args.quick or args.no_write))


if __name__ == "__main__":
    os.environ.pop("COURSEDB_HOME", None)
    main()
