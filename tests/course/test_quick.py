"""`course.py test --quick` leaves out only what its help lists, and every listed path exists."""

from __future__ import annotations

import subprocess
import sys

from coursebook import ROOT
from coursebook.commands import QUICK_ARGS, QUICK_LEAVES_OUT


def test_every_path_quick_leaves_out_exists():
    missing = [path for path in QUICK_LEAVES_OUT if not (ROOT / path).exists()]
    assert not missing, f"--quick leaves out paths that are not there any more: {missing}"


def test_quick_ignores_exactly_the_listed_paths_and_runs_notebooks_under_strict_nbval():
    ignored = {arg.removeprefix("--ignore=") for arg in QUICK_ARGS if arg.startswith("--ignore=")}
    assert ignored == set(QUICK_LEAVES_OUT)
    assert set(QUICK_ARGS) - {f"--ignore={path}" for path in ignored} == {"--nbval-only"}


def test_test_help_says_what_quick_leaves_out_without_running_pytest():
    done = subprocess.run([sys.executable, "course.py", "test", "-h"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "test --quick" in done.stdout and "pytest" not in done.stderr
    for path, why in QUICK_LEAVES_OUT.items():
        assert f"{path}" in done.stdout and why in done.stdout, f"course.py test -h does not list {path}"
