"""What checking "an error the server raises reaches the caller" costs a checker (coursedb.checks).

    .venv/bin/python benchmarks/server_error.py             # 100 rounds
    .venv/bin/python benchmarks/server_error.py --quick     # 10 rounds (no results file)

On a private embedded server, one pool of two (as db_pool) and a connection in a transaction (as db_conn).
Each round, in a shuffled order: the lookup exercise 1.2's model answer sends, bare; and the body of 1.2's
``test_a_server_error_reaches_the_caller``: a second pooled connection locks ``users`` while the lookup runs
under a lock_timeout of ``--wait`` seconds (``server_error_reaches_caller``). Figures side by side from one
run; nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import _common
import asyncpg
from _common import finish, machine, median_ms, p95_ms, table

import coursedb
from coursedb import checks

LOOKUP = "SELECT email FROM users WHERE id = $1"


async def run(dsn: str, rounds: int, wait: float) -> dict[str, list[float]]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=coursedb.init_connection)
    samples: dict[str, list[float]] = {"bare_lookup": [], "server_error_check": []}

    async def bare(conn: asyncpg.Connection) -> None:
        await conn.fetchval(LOOKUP, 42)

    async def checked(conn: asyncpg.Connection) -> None:
        async with pool.acquire() as migration:
            await checks.server_error_reaches_caller(conn.fetchval(LOOKUP, 42), conn, migration, "users", wait)

    try:
        async with pool.acquire() as conn, conn.transaction():
            ways = {"bare_lookup": bare, "server_error_check": checked}
            for _ in range(rounds):
                for way in random.sample(list(ways), len(ways)):
                    async with checks.savepoint(conn):  # its rollback ends the lookup's lock on users
                        start = time.perf_counter()
                        await ways[way](conn)
                        samples[way].append(time.perf_counter() - start)
    finally:
        await pool.close()
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 rounds, no results file")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--wait", type=float, default=0.005, help="the caller's lock_timeout, seconds (the default's)")
    args = parser.parse_args(argv)
    rounds = 10 if args.quick else args.rounds
    with _common.PrivateServer() as private:
        samples = asyncio.run(run(coursedb.database_url(private.settings()), rounds, args.wait))
    rows = [(way, median_ms(s), p95_ms(s), len(s)) for way, s in samples.items()]
    print(f"\nThe lookup of 1.2 bare, and checked for a server error reaching the caller; {rounds} rounds\n")
    print(table(["way", "median_ms", "p95_ms", "n"], rows))
    added = median_ms(samples["server_error_check"]) - median_ms(samples["bare_lookup"])
    summary = {"added_per_check_ms": round(added, 2), "wait_ms": round(args.wait * 1000, 1)}
    document = {"machine": machine(), "rounds": rounds, "rows": [dict(zip(["way", "median_ms", "p95_ms", "n"], r,
                                                                           strict=True)) for r in rows]}  # fmt: skip
    finish("server_error", document, summary, write=not args.quick)


if __name__ == "__main__":
    main()
