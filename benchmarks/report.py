"""Turn benchmarks/results/*.json into a markdown table (stdout, for README) and PNG plots.

    .venv/bin/python benchmarks/report.py                 # table to stdout, plots into benchmarks/results/
    .venv/bin/python benchmarks/report.py --no-plots      # the table only

Only results files that exist are used; a benchmark that was not run is left out. Every
number comes from a results file written by a benchmark run, with the time it was measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _common

ISOLATION_ORDER = ["rollback", "savepoint", "delete", "truncate", "drop_schema", "template_db_sql", "template_db"]


def load(results_dir: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(results_dir.glob("*.json")):
        try:
            found[path.stem] = json.loads(path.read_text())
        except ValueError:
            print(f"skipping {path}: not JSON", file=sys.stderr)
    return found


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


def markdown(data: dict[str, dict]) -> str:
    lines = ["| What | Median on this machine | Target / comparison | Re-run |", "| --- | --- | --- | --- |"]

    def add(what: str, value: str, target: str, script: str) -> None:
        lines.append(f"| {what} | {value} | {target} | `.venv/bin/python benchmarks/{script}.py` |")

    iso = data.get("isolation")
    if iso:
        s = iso["summary"]
        at = {r["strategy"]: r for r in iso["results"] if r["tables"] == 10 and r["rows"] == 0}
        for name, label in (
            ("rollback", "Per-test rollback (`db_conn`), 10 tables"),
            ("savepoint", "Savepoint per test, 10 tables"),
            ("delete", "DELETE per test, 10 tables"),
            ("truncate", "TRUNCATE … CASCADE per test, 10 tables"),
            ("drop_schema", "Drop/recreate schema per test, 10 tables"),
            ("template_db", "Database per test from a template (pytest-postgresql), 10 tables"),
            ("template_db_sql", "Database per test from a template (plain SQL), 10 tables"),
        ):
            if name in at:
                r = at[name]
                ratio = r["median_ms"] / at["rollback"]["median_ms"]
                add(
                    label,
                    f"{fmt_ms(r['median_ms'])} (p95 {fmt_ms(r['p95_ms'])})",
                    f"{ratio:.1f}× rollback",
                    "isolation",
                )
        add(
            "Rollback cheaper than template db / than TRUNCATE",
            f"{s.get('template_db_over_rollback')}× / {s.get('truncate_over_rollback')}×",
            "≥ 50× / ≥ 10× (issue 6)",
            "isolation",
        )
    be = data.get("backends")
    if be:
        s = be["summary"]
        add("Embedded server cold start to first query", fmt_ms(s["cold_start_ms"]), "≤ 2 s", "backends")
        add("Reuse of the running server, fresh process to first query", fmt_ms(s["reuse_ms"]), "≤ 0.2 s", "backends")
        if s.get("reuse_ensure_server_ms") is not None:
            parts = (
                f"import {fmt_ms(s['reuse_import_ms'])}, find server {fmt_ms(s['reuse_ensure_server_ms'])}, "
                f"own database {fmt_ms(s['reuse_database_url_ms'])}"
            )
            add("… of which", parts, "", "backends")
        add("Database per session (template clone)", fmt_ms(s["clone_ms"]), "", "backends")
        add("Server stop", fmt_ms(s["stop_ms"]), "", "backends")
        tc = s.get("testcontainers_ms")
        add("Testcontainers cold start", fmt_ms(tc) if tc is not None else str(s.get("testcontainers")), "", "backends")
    po = data.get("pools")
    if po:
        s = po["summary"]
        best = f"{s['best_ops_per_s']:.0f} queries/s (pool {s['best_pool_size']}, {s['best_concurrency']} tasks)"
        add("Pool throughput, best (1 ms queries)", best, "", "pools")
        add("Acquire wait p95, worst", f"{fmt_ms(s['worst_acquire_p95_ms'])} ({s['worst_acquire_at']})", "", "pools")
    su = data.get("suite")
    if su and any(su.get("summary", {}).get(f"{w}_s") is not None for w in ("tests", "quick", "notebook")):
        s = su["summary"]
        rows = [
            ("`python3 course.py test` (everything), cold", "tests", "s", "≤ 480 s"),
            ("`python3 course.py test --quick`, cold", "quick", "s", "≤ 120 s"),
            ("One notebook's full check (03), cold", "notebook", "s", "≤ 30 s"),
            ("All notebooks under strict nbval alone, cold", "nbval", "s", ""),
            ("First `%%ipytest` cell of a fresh kernel", "first_ipytest", "s", "≤ 0.5 s"),
        ]
        loads = {(r["what"], r["checkout"]): r["load"]["mean"] for r in su.get("results", []) if "load" in r}
        for label, what, unit, target in rows:
            if s.get(f"{what}_s") is not None:
                before = s.get(f"{what}_before_s")
                at = loads.get((what, "after"))
                now = f"{s[f'{what}_s']:.3g} {unit}" + (f" at load {at:g}" if at is not None else "")
                was = ""
                if before is not None:
                    was_at = loads.get((what, "before"))
                    was = f" (was {before:.3g} {unit}" + (f" at load {was_at:g})" if was_at is not None else ")")
                add(label, now + was, target, "suite")
    when = sorted({d["machine"]["measured_at"] for d in data.values() if d.get("machine")})
    cpus = {d["machine"]["cpus"] for d in data.values() if d.get("machine")}
    machines = [d["machine"] for d in data.values() if d.get("machine")]
    loads = [m[k] for m in machines for k in ("load_avg_1m_start", "load_avg_1m") if k in m]
    if when:
        busy = f", 1-minute load average {min(loads):g}–{max(loads):g} while measuring" if loads else ""
        lines.append("")
        first, last = when[0][:10], when[-1][:10]
        dates = first if first == last else f"{first} to {last}"  # results files are refreshed one by one
        lines.append(
            f"Measured {dates} on {'/'.join(map(str, sorted(cpus)))} cores{busy}; "
            "regenerate with `.venv/bin/python benchmarks/report.py`."
        )
    return "\n".join(lines)


def plot_isolation(iso: dict, out: Path, plt) -> Path:
    results = iso["results"]
    rows_values = sorted({r["rows"] for r in results})
    tables_values = sorted({r["tables"] for r in results})
    names = [n for n in ISOLATION_ORDER if any(r["strategy"] == n for r in results)]
    fig, axes = plt.subplots(1, len(rows_values), figsize=(6 * len(rows_values), 4.5), sharey=True, squeeze=False)
    width = 0.8 / max(1, len(tables_values))
    for ax, rows in zip(axes[0], rows_values, strict=True):
        for i, tables in enumerate(tables_values):
            by = {r["strategy"]: r for r in results if r["rows"] == rows and r["tables"] == tables}
            xs = [j + i * width for j in range(len(names))]
            ax.bar(xs, [by[n]["median_ms"] if n in by else 0 for n in names], width, label=f"{tables} tables")
        ax.set_xticks([j + width * (len(tables_values) - 1) / 2 for j in range(len(names))])
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_title(f"{rows:,} preloaded rows")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("median ms per test (log scale)")
    axes[0][-1].legend()
    fig.suptitle("Per-test cost of isolation strategies (same work in every test)")
    return save(fig, out / "isolation.png", plt)


def save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_backends(be: dict, out: Path, plt) -> Path:
    results = [r for r in be["results"] if "wall" not in r["measure"]]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(results) + 1.2))
    labels = [r["measure"].strip() for r in results]
    ax.barh(labels, [r["median_ms"] for r in results], xerr=None)
    for y, r in enumerate(results):
        ax.text(r["median_ms"], y, f" {fmt_ms(r['median_ms'])}", va="center")
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median ms (log scale)")
    ax.set_title("Getting a real PostgreSQL (embedded backend)")
    return save(fig, out / "backends.png", plt)


def plot_pools(po: dict, out: Path, plt) -> Path:
    results = po["results"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for size in sorted({r["pool_size"] for r in results}):
        mine = sorted((r for r in results if r["pool_size"] == size), key=lambda r: r["concurrency"])
        xs = [r["concurrency"] for r in mine]
        left.plot(xs, [r["ops_per_s"] for r in mine], marker="o", label=f"pool {size}")
        right.plot(xs, [max(r["acquire_p95_ms"], 1e-3) for r in mine], marker="o", label=f"pool {size}")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent tasks")
        ax.grid(alpha=0.3)
    left.set_ylabel("queries per second")
    left.set_title("Throughput (each query ~1 ms in the server)")
    right.set_yscale("log")
    right.set_ylabel("acquire wait p95, ms (log)")
    right.set_title("Waiting for a connection")
    right.legend()
    return save(fig, out / "pools.png", plt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=_common.RESULTS, help="folder with the results files")
    parser.add_argument("--out", type=Path, help="where the PNGs go (default: the results folder)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    data = load(args.results)
    print(markdown(data))
    plots: list[str] = []
    if not args.no_plots:
        import matplotlib

        matplotlib.use("Agg")  # no display needed: files only
        import matplotlib.pyplot as plt

        out = args.out or args.results
        out.mkdir(parents=True, exist_ok=True)
        for name, fn in (("isolation", plot_isolation), ("backends", plot_backends), ("pools", plot_pools)):
            if name in data:
                plots.append(str(fn(data[name], out, plt)))
    print(json.dumps({"results": sorted(data), "plots": plots}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
