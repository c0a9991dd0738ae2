"""python -m coursebook COMMAND [NN ...]   (from the repository root; course.py calls it)

build [NN ...]                 execute notebooks/src/NN_*.py into notebooks/NN_*.ipynb (all, or these),
                               after writing the learner times; then refresh every book
refresh                        write learner times, navigation and Markdown into the built books
                               without running anything (refuses books whose code changed)
check [NN ...]                 the built notebooks match their sources cell by cell, and every exercise
                               meets the rules of coursebook/exercises.py (fast: nothing runs)
learners [--out DIR] [NN ...]  learner copies (no outputs, no solutions) into DIR (default learner/)
timings [NN ...]               per-notebook Run All timings, as a Markdown table
list [NN ...]                  the notebooks' stems, one a line
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coursebook.cells import CourseBookError
from coursebook.model import ROOT, iter_notebooks

COMMANDS = ["build", "refresh", "check", "learners", "timings", "list"]


def main(argv: list[str]) -> int:
    try:
        return run(argv)
    except CourseBookError as exc:
        print(f"coursebook: {exc}", file=sys.stderr)
        return 2


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coursebook", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("prefixes", nargs="*", help="only notebooks whose name starts with one of these")
    parser.add_argument("--out", type=Path, default=ROOT / "learner", help="learners: output directory")
    args = parser.parse_intermixed_args(argv)  # `learners --out DIR 00 01`, as the guide prints it
    notebooks = list(iter_notebooks(args.prefixes))
    if not notebooks:
        print(f"coursebook: no notebook in notebooks/src/ matches {args.prefixes}.", file=sys.stderr)
        return 2
    if args.command == "list":
        print("\n".join(n.stem for n in notebooks))
        return 0
    if args.command == "check":
        from coursebook import exercises

        problems = [p for p in (n.pairing_problem() for n in notebooks) if p]
        problems += [str(p) for n in notebooks for p in exercises.problems(n)]
        for problem in problems:
            print(f"coursebook: {problem}", file=sys.stderr)
        return 1 if problems else 0
    if args.command in ("build", "refresh"):
        from coursebook import build, times

        for path in times.write(iter_notebooks()):  # the stated times of all, README, guide
            print(f"learner times: {path.relative_to(ROOT)}")
        if args.command == "build":
            for notebook in iter_notebooks(args.prefixes):  # parsed again: the time lines may have changed
                print(f"build: {notebook.source_path.relative_to(ROOT)}", flush=True)
                build.build(notebook)
        for notebook in iter_notebooks():  # neighbours' navigation, prose-only edits
            if build.refresh(notebook):
                print(f"refreshed: {notebook.book_path.relative_to(ROOT)}")
        return 1 if args.command == "refresh" and any(n.pairing_problem() for n in iter_notebooks()) else 0
    if args.command == "learners":
        from coursebook.learners import make

        for path in make(args.out, args.prefixes):
            print(f"learner copy: {path}")
        return 0
    from coursebook.timings import main as timings

    return timings(args.prefixes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
