"""asyncpg pools: acquire latency and throughput vs pool size and concurrency; what exhaustion looks like.

    .venv/bin/python benchmarks/pools.py            # 16 combinations x 1 s, plus exhaustion (~25 s)
    .venv/bin/python benchmarks/pools.py --quick    # 2 pool sizes x 2 concurrencies, short (~4 s)

Each of N concurrent tasks loops: acquire a connection, run a query that spends 1 ms in the
server (``SELECT pg_sleep(0.001)``, standing in for a real query's I/O wait), release.
"acquire" is the time from calling ``pool.acquire()`` to holding a connection: the queueing
a request suffers when the pool is smaller than the concurrency. Pools are created full
(min_size = max_size), so connecting is not counted as acquiring.

Exhaustion: 16 tasks share a pool of 2, each holds its connection for 50 ms, and each calls
``acquire(timeout=...)`` once. A small timeout turns the wait into TimeoutErrors you can test
for; no timeout means the caller just waits (the queue drains in 16 / 2 x 50 ms = 400 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import _common
import asyncpg
from _common import coursedb

QUERY = "SELECT pg_sleep(0.001)"


async def load(pool: asyncpg.Pool, tasks: int, duration: float) -> tuple[list[float], int]:
    """`tasks` workers hammer the pool for `duration` seconds; acquire waits (s) and completed queries."""
    waits: list[float] = []
    done = 0
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            async with pool.acquire() as conn:
                waits.append(time.perf_counter() - t0)
                await conn.fetchval(QUERY)
            done += 1

    await asyncio.gather(*(worker() for _ in range(tasks)))
    return waits, done


async def exhaustion(url: str, timeouts: list[float], tasks: int = 16, size: int = 2, hold: float = 0.05) -> list[dict]:
    out = []
    async with asyncpg.create_pool(url, min_size=size, max_size=size) as pool:
        for timeout in timeouts:
            waits: list[float] = []
            timed_out = 0

            async def one(timeout: float = timeout, waits: list[float] = waits) -> None:
                nonlocal timed_out
                t0 = time.perf_counter()
                try:
                    async with pool.acquire(timeout=timeout) as conn:
                        waits.append(time.perf_counter() - t0)
                        await conn.fetchval("SELECT pg_sleep($1)", hold)
                except (TimeoutError, asyncio.TimeoutError):  # distinct classes on Python 3.10
                    timed_out += 1

            await asyncio.gather(*(one() for _ in range(tasks)))
            out.append({
                "pool_size": size, "tasks": tasks, "hold_ms": hold * 1000,
                "timeout_ms": None if timeout is None else timeout * 1000,
                "ok": len(waits), "timed_out": timed_out,
                "max_wait_ms": round(max(waits) * 1000, 1) if waits else None,
            })  # fmt: skip
    return out


async def run(url: str, sizes: list[int], concurrencies: list[int], duration: float, timeouts: list) -> tuple:
    results = []
    for size in sizes:
        async with asyncpg.create_pool(url, min_size=size, max_size=size) as pool:
            await load(pool, max(concurrencies), min(0.2, duration))  # warm-up: prepared statements, caches
            for tasks in concurrencies:
                waits, done = await load(pool, tasks, duration)
                results.append({
                    "pool_size": size, "concurrency": tasks,
                    "acquire_median_ms": _common.median_ms(waits), "acquire_p95_ms": _common.p95_ms(waits),
                    "ops_per_s": round(done / duration, 1), "n": len(waits),
                })  # fmt: skip
    return results, await exhaustion(url, timeouts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 pool sizes x 2 concurrencies, 0.2 s each")
    parser.add_argument("--shared", action="store_true", help="use the course's shared server, not a private one")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per combination")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/pools.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.tasks, args.duration = [1, 10], [1, 16], 0.2
    timeouts = [0.01, 0.1, 1.0, None]

    def go(settings: _common.Settings | None) -> tuple:
        return asyncio.run(run(coursedb.database_url(settings), args.sizes, args.tasks, args.duration, timeouts))

    if args.shared:
        results, exhausted = go(None)
    else:
        with _common.PrivateServer() as private:
            results, exhausted = go(private.settings())

    print(f"\nPool size vs concurrent tasks; each query spends ~1 ms in the server; {args.duration:g} s per row\n")
    rows = [
        (r["pool_size"], r["concurrency"], r["acquire_median_ms"], r["acquire_p95_ms"], r["ops_per_s"], r["n"])
        for r in results
    ]
    print(_common.table(["pool", "tasks", "acquire_median_ms", "acquire_p95_ms", "queries_per_s", "n"], rows))
    print("\nExhaustion: 16 tasks, pool of 2, each holds a connection 50 ms, one acquire(timeout=...) each\n")
    rows = [
        ("none" if e["timeout_ms"] is None else f"{e['timeout_ms']:g}", e["ok"], e["timed_out"], e["max_wait_ms"])
        for e in exhausted
    ]
    print(_common.table(["timeout_ms", "acquired", "timed_out", "max_wait_ms"], rows))

    best = max(results, key=lambda r: r["ops_per_s"])
    worst_wait = max(results, key=lambda r: r["acquire_p95_ms"])
    summary = {
        "best_ops_per_s": best["ops_per_s"],
        "best_pool_size": best["pool_size"],
        "best_concurrency": best["concurrency"],
        "worst_acquire_p95_ms": worst_wait["acquire_p95_ms"],
        "worst_acquire_at": f"pool {worst_wait['pool_size']}, {worst_wait['concurrency']} tasks",
        "exhaustion_timed_out": {
            ("none" if e["timeout_ms"] is None else f"{e['timeout_ms']:g}ms"): e["timed_out"] for e in exhausted
        },
    }
    document = {"machine": _common.machine({"query": QUERY}), "results": results, "exhaustion": exhausted}
    document["summary"] = summary
    _common.finish("pools", document, summary, write=not (args.no_write or args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
