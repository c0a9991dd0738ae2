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
# --quick: what an author re-runs after editing a notebook; CI and `test` keep these.
QUICK_SKIPS = ["--ignore=tests/launch", "--ignore=tests/benchmarks"]
