"""The %%ipytest magic's plugins: the ones its `-p` arguments name, by those names, without reading entry points."""

from __future__ import annotations

import importlib.metadata

import hypothesis  # noqa: F401  its import reads every entry point once: done here, as in a kernel that uses it
import pytest

from coursedb.notebook import IPYTEST_ARGS, PLUGIN_MODULES, KernelPlugins

pytest_plugins = ["pytester"]

TEST = "def test_one():\n    pass\n"
INI = "[pytest]\nasyncio_default_fixture_loop_scope = session\n"  # as the course's pyproject.toml
# The kernel's arguments (no notebook file, so no ipytest magic) and the library plugin a kernel adds.
ARGS = [*IPYTEST_ARGS, "-p", "hypothesispytest"]


class Seen:
    """Records the kernel plugins registered, in order, and how often the installed distributions were read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scans = 0
        self.plugins: list[tuple[str, str]] = []
        distributions = importlib.metadata.distributions

        def counted(*args, **kwargs):
            self.scans += 1
            return distributions(*args, **kwargs)

        monkeypatch.setattr(importlib.metadata, "distributions", counted)

    def pytest_configure(self, config: pytest.Config) -> None:
        names = config.pluginmanager.list_name_plugin()
        self.plugins = [(name, plugin.__name__) for name, plugin in names if name in PLUGIN_MODULES and plugin]


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *plugins: object, args=ARGS) -> Seen:
    pytester.makepyfile(test_one=TEST)
    pytester.makeini(INI)
    with monkeypatch.context() as patch:
        seen = Seen(patch)
        result = pytester.runpytest_inprocess(*args, plugins=[seen, *plugins])
    result.assert_outcomes(passed=1)
    return seen


def test_the_same_plugins_by_the_same_names_in_the_same_order_without_reading_entry_points(pytester, monkeypatch):
    by_p = run(pytester, monkeypatch)
    named = run(pytester, monkeypatch, KernelPlugins(ARGS))
    assert by_p.scans == len(PLUGIN_MODULES), "each -p of a plugin not registered yet reads every distribution"
    assert named.scans == 0
    assert named.plugins == by_p.plugins == list(PLUGIN_MODULES.items())


def test_a_later_no_still_removes_a_plugin(pytester, monkeypatch):
    args = [*ARGS, "-p", "no:timeout"]
    seen = run(pytester, monkeypatch, KernelPlugins(args), args=args)
    assert "timeout" not in dict(seen.plugins)
    assert "asyncio" in dict(seen.plugins)


def test_each_entry_point_name_is_the_module_pytest_would_find():
    entry_points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    for name, module in PLUGIN_MODULES.items():
        assert entry_points.get(name, name) == module, f"-p {name} loads {entry_points.get(name)}, not {module}"
