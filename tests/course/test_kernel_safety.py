"""Nothing hangs, nothing kills the kernel: %%ipytest cells in a real kernel, as JupyterLab runs them.

A test that hangs, spins or leaks a pool connection fails within a bounded time with one
sentence; Kernel → Interrupt stops a running cell; a red cell ends in one line, not in a
traceback through ipytest; and after each of these the next cell runs in the same kernel,
with its prints visible. One kernel serves the whole module (kernels are slow to start).

The bound is the cell timeout passed to ``Kernel.run``: a cell that hung would make it raise.
"""

from __future__ import annotations

import time

import pytest

from tests.helpers.kernel import SETUP, Kernel

BOUND = 60  # seconds; far above the 2 s limits below, far below a hang


@pytest.fixture(scope="module")
def kernel():
    with Kernel() as kernel:
        assert kernel.run(SETUP).status == "ok"
        yield kernel


def assert_kernel_usable(kernel: Kernel) -> None:
    """The next cell runs, its print shows, and the next %%ipytest runs its tests."""
    assert kernel.run("print('still here')", timeout=BOUND).stdout == "still here\n"
    out = kernel.run("%%ipytest\ndef test_fine():\n    assert True\n", timeout=BOUND)
    assert out.status == "ok", out
    assert "1 passed" in out.stdout


def assert_one_line(out, line_start: str) -> None:
    assert out.status == "error"
    assert out.error["traceback"] == [out.error["evalue"]], "a red cell shows one line, no traceback"
    assert out.error["evalue"].startswith(line_start), out.error["evalue"]


HANGS = {
    "a_hanging_await": "import asyncio\n\nasync def test_hangs():\n    await asyncio.Event().wait()\n",
    "a_busy_loop": "def test_spins():\n    while True:\n        pass\n",
}


@pytest.mark.parametrize("test", HANGS.values(), ids=HANGS.keys())
def test_a_test_that_never_ends_is_stopped(kernel, test):
    out = kernel.run("%%ipytest --timeout 2\n" + test, timeout=BOUND)
    assert "this test ran longer than 2 s and was stopped" in out.stdout
    assert "Timeout" not in out.stdout + out.stderr  # not pytest-timeout's stack dump
    assert_one_line(out, "1 test failed")
    assert_kernel_usable(kernel)


def test_a_leaked_pool_connection_fails_with_the_sentence(kernel):
    # Exercise 2.1's most natural wrong answer: acquire() without release.
    cell = "%%ipytest\nasync def test_leaks(db_pool):\n    conn = await db_pool.acquire()\n"
    out = kernel.run(cell, timeout=BOUND)
    assert "ERROR at teardown of test_leaks" in out.stdout
    assert "a connection was never returned to the pool" in out.stdout
    assert_one_line(out, "1 test failed")
    assert_kernel_usable(kernel)


def test_interrupt_stops_the_cell_and_leaves_the_kernel_usable(kernel):
    cell = (
        "%%ipytest\nimport asyncio\n\nasync def test_waits():\n    await asyncio.Event().wait()\n\n"
        "def test_never_reached():\n    pass\n"
    )
    out = kernel.run(cell, timeout=BOUND, interrupt_after=3)
    assert "this test was interrupted (Kernel → Interrupt) and was stopped" in out.stdout
    assert_one_line(out, "The tests were interrupted")
    assert_kernel_usable(kernel)  # pytest's capture is gone from sys.stdout; no "exit_code None"


def test_a_red_cell_reads_like_pytest(kernel):
    out = kernel.run("%%ipytest\ndef test_one():\n    assert 1 == 2\n\ndef test_two():\n    assert 0\n", timeout=BOUND)
    assert "2 failed" in out.stdout  # pytest's own report, above
    assert_one_line(out, "2 tests failed — your answer is not right yet")
    for internal in ("run_cell_magic", "_impl.py", "exit_code"):
        assert internal not in out.error_text + out.stderr


def test_a_cell_that_fails_on_purpose_says_so(kernel):
    out = kernel.run("%%ipytest --fails-on-purpose\ndef test_pitfall():\n    assert 0\n", timeout=BOUND)
    assert_one_line(out, "1 test failed — expected here: this cell fails on purpose")


def test_a_test_blocked_outside_python_says_to_restart(kernel):
    # time.sleep cannot be interrupted from another thread: the cell gives up in bounded time
    # and says so; the sleeping test ends by itself later, and then %%ipytest works again.
    cell = "%%ipytest --timeout 1\nimport time\n\ndef test_sleeps():\n    time.sleep(8)\n"
    out = kernel.run(cell, timeout=BOUND)
    assert_one_line(out, "this test ran longer than 1 s and could not be stopped")
    assert "restart the kernel" in out.error["evalue"]
    retry = "%%ipytest\ndef test_fine():\n    assert True\n"
    for _ in range(BOUND):
        out = kernel.run(retry, timeout=BOUND)
        if out.status == "ok":
            break
        assert out.error["evalue"].startswith("A test from an earlier cell is still running"), out
        time.sleep(1)
    assert_kernel_usable(kernel)
