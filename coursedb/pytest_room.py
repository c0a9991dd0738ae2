"""pytest plugin for %%ipytest cells: a test that meets a full room server reads one sentence.

Registered by coursedb.notebook's ipytest arguments (``-p coursedb.pytest_room``). A test (or a
fixture of its own) whose connection the shared server refused fails with the sentence from
coursedb.room instead of a traceback through asyncpg's connect and pool code.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from .room import full_server_error, full_server_message


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.excinfo is not None and full_server_error(call.excinfo.value) is not None:
        report.longrepr = f"coursedb: {full_server_message(call.excinfo.value)}"
    return report
