"""What the room view and the recording behind it cost, measured side by side in one run.

    .venv/bin/python benchmarks/room_view.py             # 100 learners × 22 exercises, 7 page loads, 2000 records
    .venv/bin/python benchmarks/room_view.py --quick     # 10 learners, 2 page loads, 200 records (no results file)
    .venv/bin/python benchmarks/room_view.py --picture docs/images/room-view.png --learners 14   # the guide's picture

On a private embedded server, with the outcomes table filled with a made-up room (coursebook/roomdata.py:
the course's own exercises and check ids, seeded):

- **page**: the view's own work in this process (``gather``: the server's rows read and summed up;
  ``render``: the HTML), and a real headless Chromium loading the page from the real ASGI server
  (``python -m coursedb room view``, uvicorn, its own process): from navigation start to the load event,
  and the refreshing part as the page's script fetches it. The issue's bound: the page in ≤ 1 s.
- **record**: ``progress.record()`` as a checker cell calls it once per run, into the laptop's file store
  and onto the queue of the owner's keeper session (a room), and, off the cell's path, how long a queued
  outcome takes to be in the table. The issue's bound: ≤ 10 ms per checker run.

Nothing here asserts; it prints what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
from _common import PrivateServer, coursedb, finish, machine, median_ms, p95_ms, table

from coursebook import browser, roomdata
from coursedb import progress, roomview


async def fill(admin_url: str, rows: list[roomdata.Row]) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await progress.create_table(conn)
        await conn.execute(f"TRUNCATE {progress.TABLE}")
        await roomdata.write(conn, rows)
    finally:
        await conn.close()


async def in_process(admin_url: str, loads: int) -> tuple[list[float], list[float], int]:
    books = progress.course_exercises()
    conn = await asyncpg.connect(admin_url)
    gathers, renders, size = [], [], 0
    try:
        for _ in range(loads):
            began = time.perf_counter()
            data = await roomview.gather(conn, books)
            gathered = time.perf_counter()
            size = len(roomview.render_page(data))
            gathers.append(gathered - began)
            renders.append(time.perf_counter() - gathered)
    finally:
        await conn.close()
    return gathers, renders, size


NAVIGATION = """
const n = performance.getEntriesByType('navigation')[0];
return {server: n.responseStart - n.requestStart, load: n.loadEventEnd - n.startTime,
        cells: document.querySelectorAll('#grid td[data-status]').length};
"""
REFRESH = """
const done = arguments[arguments.length - 1];
const t0 = performance.now();
fetch(location.pathname + '?part=room').then(r => r.text()).then(html => {
  document.getElementById('room').innerHTML = html;
  requestAnimationFrame(() => done(performance.now() - t0));
});
"""


def in_browser(link: str, loads: int, folder: Path) -> dict:
    driver = browser.chromium(folder, width=1500, height=1000)
    try:
        driver.get(link)  # the token for a cookie; not counted
        server, load, refresh, cells = [], [], [], 0
        for _ in range(loads):
            driver.get(link.split("?")[0])
            seen = driver.execute_script(NAVIGATION)
            server.append(seen["server"] / 1000)
            load.append(seen["load"] / 1000)
            cells = seen["cells"]
            refresh.append(driver.execute_async_script(REFRESH) / 1000)
        return {"server": server, "load": load, "refresh": refresh, "cells": cells}
    finally:
        driver.quit()


def picture(link: str, path: Path, folder: Path) -> None:
    driver = browser.chromium(folder, width=1280, height=900)
    try:
        driver.get(link)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()
    print(f"wrote {path}")


def record_costs(settings, env: dict[str, str], count: int) -> dict:
    """record() into the file store and onto the keeper's queue, then the queue's trip to the table."""
    with tempfile.TemporaryDirectory() as folder:
        os.environ[progress.ENV] = folder
        failed = [progress.Failed("test_rows_of_one_transaction_tie_on_created_at", "newest_user returned 'a'")]
        file_times = []
        for i in range(count):
            began = time.perf_counter()
            progress.record("3.2", i % 4 == 0, failed)
            file_times.append(time.perf_counter() - began)
        del os.environ[progress.ENV]
    os.environ.update(env)
    coursedb.database_url(settings)  # this process's own database: its keeper session is what a kernel has
    queue_times, trips = [], []
    for i in range(count):
        began = time.perf_counter()
        progress.record("3.2", i % 4 == 0, failed)
        queue_times.append(time.perf_counter() - began)
        if i % 10 == 0:
            progress.flush(5.0)
            trips.append(time.perf_counter() - began)
    progress.flush(5.0)
    return {"file": file_times, "queue": queue_times, "trip": trips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", type=int, default=100)
    parser.add_argument("--loads", type=int, default=7, help="page loads in Chromium (and in-process builds)")
    parser.add_argument("--records", type=int, default=2000, help="record() calls per store")
    parser.add_argument("--quick", action="store_true", help="10 learners, 2 loads, 200 records; writes nothing")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/room_view.json")
    parser.add_argument("--picture", type=Path, help="only save a screenshot of the page here (no measurements)")
    args = parser.parse_args()
    if args.quick:
        args.learners, args.loads, args.records, args.no_write = 10, 2, 200, True
    reason = browser.missing()
    checks = roomdata.course_checks()
    rows = roomdata.made_up_room(args.learners, checks)
    with PrivateServer() as private, tempfile.TemporaryDirectory() as scratch:
        settings, env = private.settings(), private.env()
        admin_url = private.start()["admin_url"]
        asyncio.run(fill(admin_url, rows))
        with roomdata.room_view(admin_url, env, refresh_s=3600) as link:
            if args.picture:
                picture(link, args.picture, Path(scratch))
                return
            gathers, renders, size = asyncio.run(in_process(admin_url, args.loads))
            seen = in_browser(link, args.loads, Path(scratch)) if reason is None else None
        costs = record_costs(settings, env, args.records)

    exercises = len(checks)
    print(f"\nroom view: {args.learners} learners × {exercises} exercises, {len(rows)} outcomes; page {size:,} bytes")
    lines = [
        ("gather (read + sum up, in process)", median_ms(gathers), p95_ms(gathers)),
        ("render (HTML, in process)", median_ms(renders), p95_ms(renders)),
    ]
    if seen is not None:
        lines += [
            ("Chromium: request to first byte", median_ms(seen["server"]), p95_ms(seen["server"])),
            ("Chromium: navigation start to load end", median_ms(seen["load"]), p95_ms(seen["load"])),
            ("Chromium: the page's own refresh", median_ms(seen["refresh"]), p95_ms(seen["refresh"])),
        ]
    else:
        print(f"(Chromium skipped: {reason})")
    print(table(["page", "median ms", "p95 ms"], lines))
    print(f"\nrecord(): {args.records} calls per store")
    rows_out = [
        (label, median_ms(costs[key]), p95_ms(costs[key]), round(max(costs[key]) * 1000, 3))
        for label, key in [
            ("file store (a laptop), in the cell", "file"),
            ("keeper queue (a room), in the cell", "queue"),
            ("queued to in the table (not in the cell)", "trip"),
        ]
    ]
    print(table(["record", "median ms", "p95 ms", "max ms"], rows_out))
    summary = {
        "learners": args.learners,
        "exercises": exercises,
        "outcomes": len(rows),
        "gather_ms": median_ms(gathers),
        "render_ms": median_ms(renders),
        "page_load_ms": median_ms(seen["load"]) if seen else None,
        "page_load_p95_ms": p95_ms(seen["load"]) if seen else None,
        "refresh_ms": median_ms(seen["refresh"]) if seen else None,
        "record_file_ms": median_ms(costs["file"]),
        "record_file_p95_ms": p95_ms(costs["file"]),
        "record_queue_ms": median_ms(costs["queue"]),
        "record_queue_p95_ms": p95_ms(costs["queue"]),
        "queued_to_table_ms": median_ms(costs["trip"]),
    }
    document = {"machine": machine(), "summary": summary, "grid_cells": seen["cells"] if seen else None}
    document["samples_ms"] = {
        "gather": [round(x * 1000, 3) for x in gathers],
        "page_load": [round(x * 1000, 3) for x in seen["load"]] if seen else [],
        "record_queue_mean": round(statistics.mean(costs["queue"]) * 1000, 4),
    }
    finish("room_view", document, summary, write=not args.no_write)


if __name__ == "__main__":
    main()
