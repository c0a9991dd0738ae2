"""What checking the state after the call adds to each checker test (``--exercise`` mode, coursedb.checks).

    .venv/bin/python benchmarks/after_call.py             # 300 rounds
    .venv/bin/python benchmarks/after_call.py --quick     # 30 rounds (no results file)

On a private embedded server, one pool of two (as db_pool) and a connection in a transaction (as db_conn).
Each round runs an empty check body twice, in a shuffled order: bare, and inside ``_left_as_found`` (what
every async checker test gets: the tasks, the caller's connection before and after, its callbacks, the
pool's loggers). Also timed alone: the one query that reads the connection's server side (settings,
LISTEN channels, advisory locks). Figures side by side from one run; nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from types import SimpleNamespace

import _common
import asyncpg
from _common import finish, machine, median_ms, p95_ms, table

import coursedb
from coursedb import checks


async def empty_check(db_conn: object, db_pool: object) -> None:
    pass


async def run(dsn: str, rounds: int) -> dict[str, list[float]]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=coursedb.init_connection)
    samples: dict[str, list[float]] = {"bare": [], "after_call": [], "server_query": []}
    try:
        async with pool.acquire() as conn, conn.transaction():
            item = SimpleNamespace(funcargs={"db_conn": conn, "db_pool": pool}, iter_markers=lambda name: [])
            wrapped = checks._left_as_found(item, empty_check)  # type: ignore[arg-type]
            ways = {"bare": empty_check, "after_call": wrapped}
            for _ in range(rounds):
                for way in random.sample(list(ways), len(ways)):
                    start = time.perf_counter()
                    await ways[way](conn, pool)
                    samples[way].append(time.perf_counter() - start)
                start = time.perf_counter()
                await checks._server(conn)
                samples["server_query"].append(time.perf_counter() - start)
                if getattr(item, "_course_left", None):  # an empty body leaves nothing: the figures would be wrong
                    raise SystemExit(f"the empty check was said to leave something: {item._course_left}")
    finally:
        await pool.close()
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 rounds, no results file")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    rounds = 30 if args.quick else args.rounds
    with _common.PrivateServer() as private:
        samples = asyncio.run(run(coursedb.database_url(private.settings()), rounds))
    rows = [(way, median_ms(s), p95_ms(s), len(s)) for way, s in samples.items()]
    print(f"\nAn empty check body, bare and with the state after the call checked; {rounds} rounds\n")
    print(table(["way", "median_ms", "p95_ms", "n"], rows))
    added = median_ms(samples["after_call"]) - median_ms(samples["bare"])
    summary = {"added_per_check_ms": round(added, 2), "server_query_median_ms": median_ms(samples["server_query"])}
    document = {"machine": machine(), "rounds": rounds, "rows": [dict(zip(["way", "median_ms", "p95_ms", "n"], r,
                                                                           strict=True)) for r in rows]}  # fmt: skip
    finish("after_call", document, summary, write=not args.quick)


if __name__ == "__main__":
    main()
