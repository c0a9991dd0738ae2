"""The isolation tests can fail: with db_conn committing instead of rolling back, they do.

db_conn's own guard (coursedb.fixtures.CommitGuard) would catch that commit by itself; it is
switched off here too, so that the isolation tests have to notice it on their own.
"""

import os
import subprocess

from coursedb.paths import course_root
from tests.helpers import PYTEST_WITHOUT_NOTEBOOKS

ROOT = course_root()


def test_suite_fails_when_db_conn_commits(tmp_path):
    conftest = (ROOT / "conftest.py").read_text()
    rollback = "await transaction.rollback()"
    guard = "if problem := await guard.leftovers(ended_by_test):"
    for line in (rollback, guard):
        assert conftest.count(line) == 1, "conftest.py changed: update this mutation test"
    mutant = conftest.replace(rollback, "await transaction.commit()").replace(guard, "if problem := None:")
    (tmp_path / "conftest.py").write_text(mutant)
    for name in ("test_isolation.py", "test_seed_examples.py"):
        (tmp_path / name).write_text((ROOT / "tests" / "reference" / name).read_text())
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\n"
        "asyncio_default_test_loop_scope = session\n"
    )
    result = subprocess.run(
        [*PYTEST_WITHOUT_NOTEBOOKS, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 1, result.stdout[-2000:]
    assert "failed" in summary
    assert "test_each_test_starts_with_empty_tables" in result.stdout
