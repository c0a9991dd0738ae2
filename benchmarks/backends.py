"""What getting a real PostgreSQL costs: cold start, reuse, restart, stop, a database per session.

    .venv/bin/python benchmarks/backends.py            # 5 cold starts, 10 reuses, 20 clones (~30 s)
    .venv/bin/python benchmarks/backends.py --quick    # 1 cold start, 2 reuses, 3 clones (~5 s)

Everything runs against PRIVATE servers (a throwaway COURSEDB_HOME under /tmp), never the
shared one, and removes them afterwards.

    cold start      a fresh process on a fresh home: import coursedb, install binaries, initdb,
                    start, build the course template, clone this process's database, first query
    reuse           a fresh process while the server runs: what every notebook kernel and
                    pytest run pays (ensure_server + database_url + first query)
    restart         the server died but its data directory is kept (e.g. after a reboot)
    stop            coursedb.stop(): server gone, files removed
    clone           CREATE DATABASE ... TEMPLATE coursedb_template (+ owner comment), and its DROP
    testcontainers  the docker backend's cold start, only when a Docker engine answers

"in-process" times start at ``import coursedb`` inside the child; "process wall" adds the
Python interpreter start, as a user typing a command sees it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import _common
import psutil
from _common import ROOT, coursedb

from coursedb import databases
from coursedb._aio import run_sync
from coursedb.backends import docker, embedded

# Runs in a fresh interpreter; prints its own timings as JSON on the last line.
PROBE = """
import time
t0 = time.perf_counter()
import asyncio, json, asyncpg, coursedb
t_import = time.perf_counter()
state = coursedb.ensure_server()
t_server = time.perf_counter()
url = coursedb.database_url()
t_db = time.perf_counter()
async def first_query():
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM users")
    finally:
        await conn.close()
assert asyncio.run(first_query()) == 0
t_query = time.perf_counter()
print(json.dumps({"import_s": t_import - t0, "server_s": t_server - t_import, "database_s": t_db - t_server,
                  "query_s": t_query - t_db, "total_s": t_query - t0}))
"""

TARGETS_MS = {"cold_start": 2000, "reuse": 200}  # cold start to first query, reuse


def probe(env: dict[str, str]) -> dict:
    """Run PROBE in a fresh process; its own timings plus the wall time around it."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"probe failed: {done.stderr.strip().splitlines()[-1:]}")
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    timings["wall_s"] = wall
    return timings


def kill_server(settings: _common.Settings) -> None:
    """Let the server die the way a reboot would: data directory kept, state file stale."""
    state = coursedb.status(settings).state
    proc = psutil.Process(state.pid)
    proc.send_signal(embedded.FAST_SHUTDOWN)  # SIGINT; on Windows, where only SIGTERM exists for others, SIGTERM
    proc.wait(timeout=30)


def row(measure: str, samples: list[float], note: str = "") -> dict:
    return {
        "measure": measure,
        "median_ms": _common.median_ms(samples),
        "p95_ms": _common.p95_ms(samples),
        "min_ms": round(min(samples) * 1000, 3) if samples else None,
        "n": len(samples),
        "note": note,
    }


def measure_embedded(cold_n: int, reuse_n: int, clone_n: int) -> list[dict]:
    cold, cold_wall, cold_server, reuse, reuse_wall, restart, stops, clones, drops = ([] for _ in range(9))
    reuse_server, reuse_db, reuse_import = [], [], []
    with _common.PrivateServer() as private:
        settings, env = private.settings(), private.env()
        for i in range(cold_n):
            if i:
                private.fresh()
            t = probe(env)
            cold.append(t["total_s"])
            cold_wall.append(t["wall_s"])
            cold_server.append(t["server_s"])
        for _ in range(reuse_n):
            t = probe(env)
            reuse.append(t["total_s"])
            reuse_wall.append(t["wall_s"])
            reuse_import.append(t["import_s"])
            reuse_server.append(t["server_s"])
            reuse_db.append(t["database_s"])
        admin_url = coursedb.ensure_server(settings).admin_url
        for _ in range(clone_n):
            t0 = time.perf_counter()
            name = run_sync(databases.create_owned(admin_url, "benchmark"))
            t1 = time.perf_counter()
            run_sync(databases.drop(admin_url, name))
            clones.append(t1 - t0)
            drops.append(time.perf_counter() - t1)
        for _ in range(max(1, cold_n)):
            kill_server(settings)
            restart.append(probe(env)["total_s"])
        for i in range(max(1, cold_n)):
            if i:
                coursedb.ensure_server(settings)
            t0 = time.perf_counter()
            coursedb.stop(settings)
            stops.append(time.perf_counter() - t0)
    return [
        row("cold start to first query", cold, "in-process, fresh home"),
        row("cold start, process wall", cold_wall, "python -c ... as a user runs it"),
        row("  of which server+template", cold_server, "ensure_server() alone"),
        row("reuse to first query", reuse, "in-process, fresh process, server running"),
        row("reuse, process wall", reuse_wall, "python -c ... as a user runs it"),
        row("  of which import coursedb", reuse_import, "asyncpg, psutil, filelock, ..."),
        row("  of which ensure_server", reuse_server, "lock, state file, is it alive"),
        row("  of which database_url", reuse_db, "stale sweep + clone + owner comment"),
        row("restart (data kept)", restart, "in-process, server had died"),
        row("stop", stops, "coursedb.stop(): process and files gone"),
        row("clone database", clones, "CREATE DATABASE ... TEMPLATE + owner comment"),
        row("drop database", drops, "DROP DATABASE ... WITH (FORCE)"),
    ]


def measure_docker(n: int) -> list[dict] | str:
    problem = docker.engine_problem()
    if problem is not None:
        return f"skipped: no Docker engine ({problem})"
    cold, wall = [], []
    with _common.PrivateServer() as private:
        settings, env = private.settings(COURSEDB_BACKEND="docker"), private.env(COURSEDB_BACKEND="docker")
        try:
            for _ in range(n):
                coursedb.stop(settings)
                t = probe(env)
                cold.append(t["total_s"])
                wall.append(t["wall_s"])
        finally:
            coursedb.stop(settings)
    return [
        row("testcontainers cold start to first query", cold, "in-process, image already pulled"),
        row("testcontainers, process wall", wall, "python -c ... as a user runs it"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 cold start, 2 reuses, 3 clones")
    parser.add_argument("--cold", type=int, default=5, help="cold starts (each on a fresh home)")
    parser.add_argument("--reuse", type=int, default=10, help="fresh processes reusing the running server")
    parser.add_argument("--clones", type=int, default=20, help="database clones")
    parser.add_argument("--docker", type=int, default=3, help="Testcontainers cold starts, if an engine answers")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/backends.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.cold, args.reuse, args.clones, args.docker = 1, 2, 3, 1

    results = measure_embedded(args.cold, args.reuse, args.clones)
    docker_results = measure_docker(args.docker)
    if isinstance(docker_results, str):
        docker_note = docker_results
    else:
        docker_note = "measured"
        results.extend(docker_results)

    print("\nGetting a real PostgreSQL (ms), embedded backend on private servers\n")
    print(
        _common.table(
            ["measure", "median_ms", "p95_ms", "min_ms", "n", "note"],
            [(r["measure"], r["median_ms"], r["p95_ms"], r["min_ms"], r["n"], r["note"]) for r in results],
        )
    )
    print(f"\ntestcontainers: {docker_note}")
    by = {r["measure"]: r["median_ms"] for r in results}
    summary = {
        "cold_start_ms": by["cold start to first query"],
        "cold_start_wall_ms": by["cold start, process wall"],
        "reuse_ms": by["reuse to first query"],
        "reuse_wall_ms": by["reuse, process wall"],
        # reuse split: finding the running server vs cloning this process's database vs imports
        "reuse_import_ms": by["  of which import coursedb"],
        "reuse_ensure_server_ms": by["  of which ensure_server"],
        "reuse_database_url_ms": by["  of which database_url"],
        "restart_ms": by["restart (data kept)"],
        "stop_ms": by["stop"],
        "clone_ms": by["clone database"],
        "testcontainers_ms": by.get("testcontainers cold start to first query"),
        "testcontainers": docker_note,
        "target_cold_start_ms": TARGETS_MS["cold_start"],
        "target_reuse_ms": TARGETS_MS["reuse"],
    }
    summary["cold_start_within_target"] = summary["cold_start_ms"] <= TARGETS_MS["cold_start"]
    summary["reuse_within_target"] = summary["reuse_ms"] <= TARGETS_MS["reuse"]
    print(
        f"targets: cold start {summary['cold_start_ms']:.0f} ms (target <= {TARGETS_MS['cold_start']}), "
        f"reuse {summary['reuse_ms']:.0f} ms (target <= {TARGETS_MS['reuse']}); in-process medians"
    )
    machine = _common.machine({"backend": "embedded (private)"})
    document = {"machine": machine, "results": results, "summary": summary}
    _common.finish("backends", document, summary, write=not (args.no_write or args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
