"""After a kernel restart halfway through a notebook, a later cell says what to do.

setup() has the environment's IPython kernels load coursedb.notebook as an extension
(sys.prefix/etc/ipython/ipython_kernel_config.py); until setup() runs again in a kernel, a
NameError or a missing %%ipytest magic is followed by the sentence that explains it.
"""

from __future__ import annotations

import pytest

from coursedb.notebook import RESTART_HINT
from tests.helpers.kernel import SETUP, Kernel

# jupyter_client leaves the sockets and event loop of the restarted kernel's channels to the
# garbage collector, which may run during this test: that is the test driver's litter, not the course's.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_a_restarted_kernel_says_to_run_the_setup_cell_again():
    with Kernel() as kernel:
        assert kernel.run(SETUP).status == "ok"
        assert kernel.run("conn = 'the notebook connection'").status == "ok"
        kernel.restart()

        later_cell = kernel.run("print(conn)")
        assert later_cell.error["ename"] == "NameError"
        assert RESTART_HINT in later_cell.stderr

        later_test = kernel.run("%%ipytest\ndef test_x():\n    pass\n")
        assert later_test.status == "error"
        assert RESTART_HINT in later_test.stderr

        assert kernel.run(SETUP).status == "ok"  # what the hint says to do
        typo = kernel.run("print(undefined_name)")
        assert typo.error["ename"] == "NameError"
        assert RESTART_HINT not in typo.stderr  # after setup, a NameError is just a NameError
        assert kernel.run("%%ipytest\ndef test_x():\n    pass\n").status == "ok"
