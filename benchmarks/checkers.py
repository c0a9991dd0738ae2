"""Each exercise's checker, timed on its model answer: the target is 2 s or less per checker.

    .venv/bin/python benchmarks/checkers.py              # every notebook, 3 runs per checker, median
    .venv/bin/python benchmarks/checkers.py 03 04 --runs 1

One kernel per notebook, in notebooks/, on a private embedded server (the shared one is never
touched): every code cell of the notebook's source runs in order, the model answer right after its
stub, as a learner who solved the exercise would have it. Each checker cell then runs ``--runs``
times; the time is measured around the cell's execution in the kernel (what a learner waits for,
the %%ipytest session included). A checker that does not pass on its model answer is reported as
such. Results: benchmarks/results/checkers.json (notebooks not run keep their earlier rows).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import _common
from _common import ROOT
from jupyter_client.manager import KernelManager

from coursebook.model import find_exercises, iter_notebooks  # _common put the repository on sys.path

TARGET_S = 2.0
RESULT = _common.RESULTS / "checkers.json"
CELL_TIMEOUT_S = 120


def run_cell(client, code: str) -> tuple[float, str, bool]:
    """Seconds the cell took, its text output, and whether it raised."""
    texts: list[str] = []
    failed = False

    def collect(msg: dict) -> None:
        nonlocal failed
        kind = msg["msg_type"]
        if kind == "stream":
            texts.append(msg["content"]["text"])
        elif kind == "error":
            failed = True
            texts.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    start = time.perf_counter()
    reply = client.execute_interactive(code, output_hook=collect, timeout=CELL_TIMEOUT_S, allow_stdin=False)
    took = time.perf_counter() - start
    return took, "".join(texts), failed or reply["content"]["status"] != "ok"


def time_notebook(notebook, env: dict[str, str], runs: int) -> list[dict]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(ROOT / "notebooks"), env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    rows = []
    try:
        checkers = {ex.checker: key for key, ex in find_exercises(notebook.cells).items()}
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            if index not in checkers:
                run_cell(client, cell.source)  # the notebook as a learner runs it, model answers in place
                continue
            times, passed, text = [], True, ""
            for _ in range(runs):
                took, text, failed = run_cell(client, cell.source)
                times.append(took)
                passed = passed and not failed and "passed" in text
            rows.append(
                {
                    "notebook": notebook.stem,
                    "exercise": checkers[index],
                    "seconds": round(statistics.median(times), 3),
                    "runs": runs,
                    "passes_on_model": passed,
                    "within_target": statistics.median(times) <= TARGET_S,
                    **({} if passed else {"output": text[-3000:]}),
                }
            )
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each checker (median)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results/checkers.json")
    args = parser.parse_args()
    rows: list[dict] = []
    with _common.PrivateServer() as server:
        for notebook in iter_notebooks(args.notebooks):
            rows += time_notebook(notebook, server.env(), args.runs)
    print(
        _common.table(
            ["notebook", "exercise", "checker on model (s)", "passes", f"<= {TARGET_S:g} s"],
            [[r["notebook"], r["exercise"], r["seconds"], r["passes_on_model"], r["within_target"]] for r in rows],
        )
    )
    for row in rows:
        if not row["passes_on_model"]:
            print(f"\n{row['notebook']} {row['exercise']}: the checker fails on the model answer:\n{row['output']}")
    slowest = max((r["seconds"] for r in rows), default=float("nan"))
    # Notebooks not run this time keep their earlier figures (each with the machine facts it was measured on).
    measured = _common.machine()
    for row in rows:
        row["machine"] = measured
    earlier = RESULT.exists() and json.loads(RESULT.read_text()).get("checkers", [])
    ran = {row["notebook"] for row in rows}
    kept = [row for row in (earlier or []) if row["notebook"] not in ran]
    document = {"target_s": TARGET_S, "checkers": sorted(kept + rows, key=lambda r: (r["notebook"], r["exercise"]))}
    summary = {"checkers": len(rows), "slowest_s": slowest, "all_pass": all(r["passes_on_model"] for r in rows)}
    _common.finish("checkers", document, summary, write=not args.no_write)


if __name__ == "__main__":
    main()
