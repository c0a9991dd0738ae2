"""nbval settings for the course notebooks (learners can skip this file)."""

import pytest

# nbval waits only 5 s for a kernel's next message after a cell finishes (nbval issue 231);
# on a busy 2-core runner that flakes. 60 s removes the flake; a real hang still fails,
# at the latest at --nbval-cell-timeout.
OUTPUT_TIMEOUT = 60


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = OUTPUT_TIMEOUT
