"""A room on one server: N simulated learners, each a real kernel doing Run All, at the same time.

For every N of the ladder and every server, N kernels run their notebook (built book, as a learner
opens it: exercises unsolved, so the tagged checkers fail as they should) concurrently through
nbclient against ONE PostgreSQL server:

    embedded      the course's embedded server (max_connections 300), as on a JupyterHub machine
    postgresql15  a stock PostgreSQL 15 with max_connections 100 (Debian's initdb/pg_ctl), started
                  here, reached through COURSEDB_URL as an ordinary CREATEDB role, like a room server

Connections are COUNTED, not sampled: the server logs every connection and disconnection, and
replaying the log gives the most sessions open at once on the server and per learner (sessions on
the learner's own database, coursedb_<kernel pid>_*, and its liveness session, application_name
"coursedb kernel <pid>"). Server memory is sampled (PSS of the
postmaster and its children, every 0.5 s). Wall time is reported against N = 1. Nothing here
asserts; it prints what happened, failures included.

    .venv/bin/python benchmarks/room.py                      # ladder 1 4 8 16 30, both servers, notebook 02
    .venv/bin/python benchmarks/room.py --ladder 1 4 --servers embedded --notebooks 00 02
    .venv/bin/python benchmarks/room.py --quick               # N = 1 on the embedded server, notebook 00
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from pathlib import Path

import psutil
from _common import ROOT, PrivateServer, coursedb, finish, machine, table  # puts the repository on sys.path

from coursebook.system_postgres import available, system_postgres
from coursedb import names, room
from coursedb.platform import load_average

NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT = 900  # a cell of 30 concurrent kernels on 2 cores can be slow; never a hang


def book(prefix: str) -> Path:
    found = sorted(NOTEBOOKS.glob(f"{prefix}*.ipynb"))
    if not found:
        raise SystemExit(f"no notebook notebooks/{prefix}*.ipynb")
    return found[0]


def pss_mb(procs: list[psutil.Process]) -> float:
    """Proportional set size of processes: shared pages counted once in total, not once per process."""
    total = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except psutil.Error:
            pass  # ended or not ours to read: it holds no memory we could count
    return total / 2**20


class MemorySampler(threading.Thread):
    """Peak PSS of a postmaster and all its children, and of the learners' kernels, sampled."""

    def __init__(self, postmaster_pid: int, kernel_pids: list[int], period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(postmaster_pid)
        self.kernel_pids = kernel_pids
        self.period = period
        self.peak_mb = self.now_mb()
        self.kernels_peak_mb = 0.0
        self.done = threading.Event()

    def now_mb(self) -> float:
        return pss_mb([self.root, *self.root.children(recursive=True)])

    def kernels_mb(self) -> float:
        procs = []
        for pid in list(self.kernel_pids):
            try:
                procs.append(psutil.Process(pid))
            except psutil.Error:
                pass  # that kernel has ended
        return pss_mb(procs)

    def run(self) -> None:
        while not self.done.wait(self.period):
            self.peak_mb = max(self.peak_mb, self.now_mb())
            self.kernels_peak_mb = max(self.kernels_peak_mb, self.kernels_mb())

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak_mb


async def run_learner(path: Path, env: dict[str, str], pids: list[int]) -> str | None:
    """Run All of one notebook in a fresh kernel; None if every cell ran as tagged, else the error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        startup_timeout=CELL_TIMEOUT,  # 30 kernels starting at once on 2 cores take a while
        iopub_timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    try:
        async with client.async_setup_kernel(env=env):
            pids.append(client.km.provisioner.pid)
            for index, cell in enumerate(nb.cells):
                await client.async_execute_cell(cell, index)
    except CellExecutionError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        return lines[-1][:300] if lines else "cell error"
    except Exception as exc:  # a kernel that died or timed out is a failed learner, not a crash here
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def read_from(log: Path, offset: int) -> str:
    with open(log, "rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def wait_until_closed(log: Path, offset: int, limit: float = 60) -> str:
    """The log since offset, once every session it opened has closed (bounded)."""
    deadline = time.monotonic() + limit
    while True:
        text = read_from(log, offset)
        if room.connection_peaks(text).sessions <= text.count("disconnection: session time") or (
            time.monotonic() > deadline
        ):
            return text
        time.sleep(0.5)


def run_room(n: int, notebooks: list[Path], env: dict[str, str], log: Path, postmaster: int) -> dict:
    offset = log.stat().st_size
    pids: list[int] = []
    sampler = MemorySampler(postmaster, pids)
    idle_mb = sampler.peak_mb
    sampler.start()
    started = time.perf_counter()

    async def everyone() -> list[str | None]:
        return await asyncio.gather(*(run_learner(notebooks[i % len(notebooks)], env, pids) for i in range(n)))

    errors = asyncio.run(everyone())
    wall = time.perf_counter() - started
    peak_mb = sampler.stop()
    text = wait_until_closed(log, offset)
    kernels = {str(pid) for pid in pids}

    def learner_of(database: str, app: str) -> str | None:
        pid = names.session_pid(database, app)  # its own database, or a session that names its pid
        return str(pid) if pid is not None and str(pid) in kernels else None

    peaks = room.connection_peaks(text, learner_of)
    failures = [e for e in errors if e is not None]
    return {
        "n": n,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "peak_connections": peaks.total,
        "per_learner_peak": max(peaks.groups.values(), default=0),
        "other_peak": _other_peak(text, learner_of),
        "refused": peaks.refused,
        "sessions": peaks.sessions,
        "server_memory_mb": round(peak_mb),
        "server_idle_memory_mb": round(idle_mb),
        "kernel_memory_mb": round(sampler.kernels_peak_mb / n),  # per learner's kernel, peak
        "wall_s": round(wall, 1),
        "load_avg_1m": load_average(),
    }


def _other_peak(text: str, learner_of) -> int:
    """Most sessions open at once that are not on a learner's own database (setup, liveness, admin)."""
    peaks = room.connection_peaks(text, lambda db, app: "other" if learner_of(db, app) is None else None)
    return peaks.groups.get("other", 0)


def ladder_on(server: str, ladder: list[int], notebooks: list[Path]) -> list[dict]:
    rows = []
    if server == "embedded":
        with PrivateServer() as private:
            env = private.env()
            state = coursedb.ensure_server(private.settings())
            asyncio.run(room.enable_connection_log(state.admin_url))
            for n in ladder:
                rows.append(run_room(n, notebooks, env, Path(state.log), state.pid))
                report(server, rows[-1])
    else:
        reason = available()
        if reason:
            print(f"skipping {server}: {reason}")
            return []
        with PrivateServer() as private, system_postgres(max_connections=100) as pg:
            env = private.env(COURSEDB_BACKEND="url", COURSEDB_URL=pg.room_url)
            for n in ladder:
                rows.append(run_room(n, notebooks, env, pg.log, pg.postmaster_pid))
                report(server, rows[-1])
    base = next((r["wall_s"] for r in rows if r["n"] == 1), None)
    for row in rows:
        row["server"] = server
        row["per_learner_memory_mb"] = round(
            max(row["server_memory_mb"] - row["server_idle_memory_mb"], 0) / row["n"], 1
        )
        row["wall_vs_n1"] = round(row["wall_s"] / base, 2) if base else None
    return rows


def report(server: str, row: dict) -> None:
    failed = f", first: {row['first_failure']}" if row["failures"] else ""
    print(
        f"[{server}] N={row['n']}: {row['failures']} failed{failed}; peak {row['peak_connections']} connections, "
        f"{row['per_learner_peak']} per learner; {row['server_memory_mb']} MB; {row['wall_s']} s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladder", type=int, nargs="+", default=[1, 4, 8, 16, 30])
    servers = ["embedded", "postgresql15"]
    parser.add_argument("--servers", nargs="+", choices=servers, default=servers)
    parser.add_argument("--notebooks", nargs="+", default=["02"], help="learners take these in turn (default: 02)")
    parser.add_argument("--quick", action="store_true", help="N = 1, embedded, notebook 00; writes nothing")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.ladder, args.servers, args.notebooks, args.no_write = [1], ["embedded"], ["00"], True
    notebooks = [book(prefix) for prefix in args.notebooks]
    print(f"room: ladder {args.ladder} on {', '.join(args.servers)}; notebooks {[p.stem for p in notebooks]}")
    rows = []
    for server in args.servers:
        rows.extend(ladder_on(server, sorted(args.ladder), notebooks))
    headers = ["server", "N", "failed", "peak conns", "per learner", "other", "refused", "server MB", "idle MB"]
    headers += ["kernel MB", "wall s", "vs N=1"]
    print()
    print(table(headers, [
        [r["server"], r["n"], r["failures"], r["peak_connections"], r["per_learner_peak"], r["other_peak"],
         r["refused"], r["server_memory_mb"], r["server_idle_memory_mb"], r["kernel_memory_mb"], r["wall_s"],
         "-" if r["wall_vs_n1"] is None else r["wall_vs_n1"]]
        for r in rows
    ]))  # fmt: skip
    figures = {
        # With one learner the server's peak is exactly that learner's; with more, each learner's
        # sessions (its database and its liveness session) counted apart.
        "per_learner_connections": max(
            [r["peak_connections"] for r in rows if r["n"] == 1] + [r["per_learner_peak"] for r in rows], default=0
        ),
        "per_learner_memory_mb": max((r["per_learner_memory_mb"] for r in rows if r["n"] > 1), default=0.0) or 40.0,
        # The first idle reading: later ones still hold the previous run's caches.
        "server_base_memory_mb": rows[0]["server_idle_memory_mb"] if rows else 150,
        "kernel_memory_mb": max((r["kernel_memory_mb"] for r in rows), default=0),
    }
    document = {
        "benchmark": "room",
        "measured": time.strftime("%Y-%m-%d"),
        "machine": machine({"notebooks": [p.stem for p in notebooks]}),
        "rows": rows,
        "figures": figures,
        "budget": room.BUDGET,
    }
    print(f"\nfigures per learner: {figures}\n{room.sizing_table(figures=figures | {'source': 'this run'})}")
    last = rows[-1] if rows else {"n": 0, "failures": 0, "peak_connections": 0, "per_learner_peak": 0}
    summary = {
        "n": last["n"],
        "server": last.get("server"),
        "failures": last["failures"],
        "peak_connections": last["peak_connections"],
        "per_learner_peak": last["per_learner_peak"],
        "total_failures": sum(r["failures"] for r in rows),
        "max_per_learner_peak": max((r["per_learner_peak"] for r in rows), default=0),
    }
    finish("room", document, summary, write=not args.no_write)


if __name__ == "__main__":
    main()
