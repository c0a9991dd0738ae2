"""python -m coursebook build|learners|timings [NN ...]   (from the repository root; course.py calls it)

build [NN ...]                 execute notebooks/src/NN_*.py into notebooks/NN_*.ipynb (all, or these)
learners [--out DIR] [NN ...]  learner copies (no outputs, no solutions) into DIR (default learner/)
timings [NN ...]               per-notebook Run All timings, as a Markdown table
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coursebook.model import ROOT, iter_notebooks


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursebook", description=__doc__.split("\n\n")[1])
    parser.add_argument("command", choices=["build", "learners", "timings"])
    parser.add_argument("prefixes", nargs="*", help="only notebooks whose name starts with one of these")
    parser.add_argument("--out", type=Path, default=ROOT / "learner", help="learners: output directory")
    args = parser.parse_args(argv)
    if args.command == "build":
        from coursebook.build import build

        notebooks = list(iter_notebooks(args.prefixes))
        if not notebooks:
            print(f"coursebook: no notebook source matches {args.prefixes}", file=sys.stderr)
            return 2
        for notebook in notebooks:
            print(f"build: {notebook.source_path.relative_to(ROOT)}", flush=True)
            build(notebook)
        return 0
    if args.command == "learners":
        from coursebook.learners import make

        for path in make(args.out, args.prefixes):
            print(f"learner copy: {path}")
        return 0
    from coursebook.timings import main as timings

    return timings(args.prefixes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
