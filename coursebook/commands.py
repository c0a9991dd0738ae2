"""The course's test command, in one place: course.py runs it, coursebook's tools and tests reuse its parts.

Standard library only, and nothing imported: course.py, which must run on a bare Python from any
folder, loads this file by its path. Paths are relative to the repository root, where course.py runs
every command (the notebook run resolves the sanitize file against pytest's rootdir too).
"""

SANITIZE_FILE = "notebooks/sanitize.cfg"
# Strict nbval over the committed outputs: every argument.
NBVAL_ARGS = ["--nbval", "--nbval-sanitize-with", SANITIZE_FILE, "--nbval-cell-timeout", "300"]
# Each test file (and notebook: its items share one kernel) on one worker; the plugin runs each notebook
# once as a learner does and checks everything about it in that kernel (coursebook/pytest_plugin.py).
TEST_ARGS = ["-n", "auto", "--dist", "loadfile", "-p", "coursebook.pytest_plugin", *NBVAL_ARGS]
# --quick: the authors' loop (target: two minutes on 2 idle cores). Every unit test of coursedb, coursebook
# and the reference suite, every content check, and every notebook under strict nbval; left out (CI and
# `test` run them), each for what it costs and what it proves beyond the rest:
QUICK_LEAVES_OUT = {
    "tests/launch": "JupyterLab, Binder, JupyterHub, a browser and the CI workflows, started for real",
    "tests/benchmarks": "the benchmarks' smoke runs",
    "tests/coursedb/robustness": "fault loops: killed servers and kernels, races, grace periods, permissions",
    "tests/coursedb/test_room_poolers.py": "the room behind a real PgBouncer",
    "tests/coursedb/test_room_roles.py": "the room's two roles on a stock PostgreSQL",
    "tests/course/test_room_simulation.py": "ten learners' kernels in a room on a stock PostgreSQL",
    "tests/course/test_answer_trials.py": "answers tried in a nested notebook run",
    "tests/course/test_notebook_run.py": "the notebook run's checks failing on purpose, in a nested run",
}
# and each notebook's Run All again (every wrong answer, right answer and mutant against its checker, the
# model answer), each cell twice and the connection budget: --quick runs strict nbval alone.
QUICK_ARGS = ["--nbval-only", *(f"--ignore={path}" for path in QUICK_LEAVES_OUT)]


def test_help() -> str:
    """What `course.py test -h` prints: what the command runs, and what --quick leaves out."""
    left_out = "\n".join(f"    {path:38} {why}" for path, why in QUICK_LEAVES_OUT.items())
    return f"""python3 course.py test [--quick] [--nbval-only] [pytest arguments]

  test            everything CI runs: tests/ (coursedb, the reference suite, the content checks, the fault
                  tests, launch checks, benchmark smoke) and every notebook's one kernel run: strict nbval,
                  then Run All again with every wrong answer, right answer and mutant of its answers
                  against its checker and the model answer, each cell twice, the connection budget.
                  An xdist worker a core, one more when the machine is not busy (no more than the
                  files named), one test file (one notebook) each at a time.
  test --quick    the authors' loop: the same without
{left_out}
                  and with the notebooks under strict nbval alone (no answers, mutants, second runs or
                  budget). Run `test` once before you land.
  --nbval-only    the notebooks under strict nbval alone (what nbval itself does)
  a path          one notebook's full check: python3 course.py test notebooks/03_rollback_isolation.ipynb

Item time limits stretch with the machine's load (coursebook/limits.py). pytest's own options:
.venv/bin/python -m pytest --help. Pytest arguments: {" ".join(TEST_ARGS)}
"""
