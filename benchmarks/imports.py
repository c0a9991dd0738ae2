"""What every pytest process of the course's venv pays before its first test: importing nbformat.

    .venv/bin/python benchmarks/imports.py              # 5 fresh processes per way, median CPU seconds
    .venv/bin/python benchmarks/imports.py --runs 1 --no-write

nbval is a pytest plugin that pytest loads in every process of this venv (the test command's controller
and xdist workers, every nested pytest of the tests, the pytest a notebook runs); it imports nbformat,
which imports jsonschema. From 4.25 on, jsonschema's format checker imports rfc3987_syntax if it is installed
(jupyter-events asks for jsonschema[format-nongpl], which brings it), and that module builds three Earley
parsers of the IRI grammar as it is imported: requirements.txt pins jsonschema below 4.25 for that. Fresh
processes, taking turns: ``import nbformat`` as installed, and with rfc3987_syntax blocked
(``sys.modules[name] = None``: jsonschema then leaves out the IRI formats, nothing else changes); the table
says whether each imported it, and which jsonschema is installed. CPU seconds of the process (user +
system, ``time.process_time``), so the figures do not grow with other work on the machine as wall time
does; the load is printed beside them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import subprocess
import sys

import _common

IMPORT = (
    "import sys, time; t = time.process_time(); import nbformat; "
    "print(time.process_time() - t, sys.modules.get('rfc3987_syntax') is not None)"
)
WAYS = {
    "installed": IMPORT,
    "without_rfc3987_syntax": "import sys; sys.modules['rfc3987_syntax'] = None; " + IMPORT,
}


def cpu_seconds(code: str) -> tuple[float, bool]:
    """CPU seconds of the import, and whether it imported rfc3987_syntax."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, imported = done.stdout.split()
    return float(seconds), imported == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per way (median)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results/imports.json")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {way: [] for way in WAYS}
    imported: dict[str, bool] = {}
    for _ in range(args.runs):
        for way, code in WAYS.items():  # taking turns: load changes hit both alike
            seconds, imported[way] = cpu_seconds(code)
            samples[way].append(seconds)
    medians = {way: round(statistics.median(values), 3) for way, values in samples.items()}
    headers = ["import nbformat", "CPU s (median)", "runs", "imports rfc3987_syntax"]
    print(_common.table(headers, [[w, m, args.runs, imported[w]] for w, m in medians.items()]))
    jsonschema = importlib.metadata.version("jsonschema")
    print(f"jsonschema {jsonschema}; load average (1 min) now {_common.load_average()}")
    summary = {
        "nbformat_cpu_s": medians["installed"],
        "nbformat_without_rfc3987_syntax_cpu_s": medians["without_rfc3987_syntax"],
        "rfc3987_syntax_cpu_s": round(medians["installed"] - medians["without_rfc3987_syntax"], 3),
        "imports_rfc3987_syntax": imported["installed"],
        "jsonschema": jsonschema,
    }
    document = {"samples_cpu_s": samples, **summary, "machine": _common.machine()}
    _common.finish("imports", document, summary, write=not args.no_write)


if __name__ == "__main__":
    main()
