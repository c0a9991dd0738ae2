"""setup() leaves what the kernel has loaded out of later garbage collections, and nothing the notebook makes."""

from __future__ import annotations

from tests.helpers.kernel import SETUP, Kernel

CYCLE = """
import gc
collected = []

class Cycle:
    '''Garbage only the cyclic collector can free: it refers to itself.'''

    def __init__(self, name):
        self.name, self.me = name, self

    def __del__(self):
        collected.append(self.name)
"""
TEST = "%%ipytest\ndef test_nothing():\n    pass\n"


def test_setup_freezes_once_and_what_the_notebook_makes_is_still_collected():
    with Kernel() as kernel:
        assert kernel.run(SETUP).status == "ok"
        frozen = int(kernel.run("import gc; print(gc.get_freeze_count())").stdout)
        assert frozen > 10_000, "setup() froze the kernel's modules: pytest's collections skip them"
        assert kernel.run(CYCLE).status == "ok"
        assert kernel.run("made = Cycle('made after setup')\ndel made").status == "ok"  # garbage now
        assert kernel.run("kept = Cycle('alive while setup ran again')").status == "ok"
        assert kernel.run(SETUP).status == "ok"  # Run All again: setup() once more in the same kernel
        assert kernel.run("del kept").status == "ok"
        assert kernel.run(TEST).status == "ok"  # pytest collects garbage as the session ends
        seen = kernel.run("print(sorted(collected), gc.get_freeze_count())").stdout.split("] ")
        assert seen[0] + "]" == str(sorted(["made after setup", "alive while setup ran again"]))
        assert int(seen[1]) <= frozen, "a later setup() froze nothing more (frozen objects freed still leave)"
