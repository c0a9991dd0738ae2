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
from collections.abc import Callable
from pathlib import Path

from coursebook.cells import CourseBookError
from coursebook.model import ROOT, Notebook, iter_notebooks


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
        raise CourseBookError(f"no notebook in notebooks/src/ matches {args.prefixes}.")
    return COMMANDS[args.command](args, notebooks)


def list_stems(args: argparse.Namespace, notebooks: list[Notebook]) -> int:
    print("\n".join(n.stem for n in notebooks))
    return 0


def check(args: argparse.Namespace, notebooks: list[Notebook]) -> int:
    from coursebook import exercises

    problems = [p for p in (n.pairing_problem() for n in notebooks) if p]
    problems += [str(p) for n in notebooks for p in exercises.problems(n)]
    for problem in problems:
        print(f"coursebook: {problem}", file=sys.stderr)
    return 1 if problems else 0


def build_books(args: argparse.Namespace, notebooks: list[Notebook]) -> int:
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


def learner_copies(args: argparse.Namespace, notebooks: list[Notebook]) -> int:
    from coursebook.learners import make

    for path in make(args.out, args.prefixes):
        print(f"learner copy: {path}")
    return 0


def timings(args: argparse.Namespace, notebooks: list[Notebook]) -> int:
    from coursebook.timings import main as timings_table

    return timings_table(args.prefixes)


COMMANDS: dict[str, Callable[[argparse.Namespace, list[Notebook]], int]] = {
    "build": build_books,
    "refresh": build_books,
    "check": check,
    "learners": learner_copies,
    "timings": timings,
    "list": list_stems,
}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
