"""The instructor's room view in a real browser: the grid, the stuck list, the failing checks, idle learners, CSV.

A private embedded server gets the outcomes table and a small room's outcomes with known counts;
``python -m coursedb room view`` serves it (the real ASGI server, uvicorn, in its own process); headless
Chromium (as in test_browser.py) opens the link with the token it printed, reads what the page shows,
waits for the page to refresh itself after a new checker run, and downloads the CSV by clicking its link.
"""

from __future__ import annotations

import csv
import time
import urllib.error
import urllib.request

import asyncpg
import pytest

import coursedb
from coursebook import browser
from coursebook.roomdata import Row, room_view, write
from coursedb import progress
from tests.helpers import cli, env_for, run, settings_for

pytestmark = [
    pytest.mark.skipif(browser.missing() is not None, reason=f"the room view: {browser.missing()}"),
    pytest.mark.timeout(300),
]

TIE = "test_rows_of_one_transaction_tie_on_created_at"
LENDS = "test_acquire_lends_the_tests_connection"


def failed(*checks: str) -> tuple[progress.Failed, ...]:
    return tuple(progress.Failed(c, f"{c.removeprefix('test_')} went wrong ({i})") for i, c in enumerate(checks))


# ada: 3.1 passed, stuck on 3.2 (3 failed runs); grace: 3.2 passed on her second run, then went quiet on 4.1;
# linus: stuck on 3.2 too, and tried 3.1 once. The sentences differ (they carry values): counts go by check id.
ROOM = [
    Row("grace", "3.2", False, failed(TIE), 30),
    Row("grace", "3.2", True, (), 20),
    Row("grace", "4.1", False, failed("test_release_to_the_savepoint"), 15),
    Row("ada", "3.1", True, (), 9),
    *(Row("ada", "3.2", False, failed(TIE), 8 - n) for n in range(3)),
    *(Row("linus", "3.2", False, failed(TIE, LENDS)[: n + 1] if n < 2 else failed(TIE), 7 - n) for n in range(3)),
    Row("linus", "3.1", False, failed(LENDS), 1),
]


def grid(driver) -> dict[str, dict[str, str]]:
    """learner -> exercise -> status, as the page's grid shows it."""
    return driver.execute_script("""
        const heads = document.querySelectorAll('#grid thead tr:nth-child(2) th');
        const exercises = Array.from(heads).map(t => t.textContent);
        const out = {};
        for (const row of document.querySelectorAll('#grid tbody tr')) {
            const cells = Array.from(row.querySelectorAll('td[data-status]')).map(c => c.dataset.status);
            out[row.dataset.learner] = Object.fromEntries(exercises.map((e, i) => [e, cells[i]]));
        }
        return out;
    """)


def texts(driver, css: str) -> list[str]:
    return driver.execute_script(
        f"return Array.from(document.querySelectorAll({css!r})).map(e => e.textContent.trim());"
    )  # fmt: skip


def test_the_room_view_shows_the_room_refreshes_and_exports_csv(home, tmp_path):
    assert cli(home, "start").returncode == 0
    admin_url = coursedb.status(settings_for(home)).state.admin_url

    run(fill(admin_url, ROOM, create=True))
    downloads = tmp_path / "downloads"
    with room_view(admin_url, env_for(home), refresh_s=1) as link:
        driver = browser.chromium(tmp_path, downloads=downloads)
        try:
            see_the_room(driver, link, admin_url, downloads, tmp_path)
        finally:
            driver.quit()


def see_the_room(driver, link: str, admin_url: str, downloads, tmp_path) -> None:
    bare = link.split("?")[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare, timeout=10)
    refused.value.close()
    assert refused.value.code == 403  # standalone: nothing without the printed token

    driver.get(link)
    assert driver.current_url == bare, "the token is swapped for a cookie and leaves the address bar"

    shown = grid(driver)
    assert sorted(shown) == ["ada", "grace", "linus"]
    assert len(shown["ada"]) == sum(len(b.exercises) for b in progress.course_exercises())
    assert shown["ada"]["3.1"] == "passed" and shown["ada"]["3.2"] == "trying" and shown["ada"]["4.1"] == "not started"
    assert shown["grace"]["3.2"] == "passed" and shown["grace"]["4.1"] == "trying"
    assert shown["linus"]["3.1"] == "trying" and shown["linus"]["3.2"] == "trying"
    assert texts(driver, "#grid td.stuck") == ["3", "3"]  # ada's and linus's 3.2: 3 failed runs, none passed

    assert texts(driver, "#exercises tr[data-exercise='3.2'] .stuck-names") == ["2 (ada, linus)"]
    assert texts(driver, f"#exercises tr[data-exercise='3.2'] [data-check='{TIE}'] .count") == ["2"]
    assert texts(driver, f"#exercises tr[data-exercise='3.2'] [data-check='{LENDS}'] .count") == []
    assert texts(driver, f"#exercises tr[data-exercise='3.1'] [data-check='{LENDS}'] .count") == ["1"]
    assert texts(driver, "#idle [data-learner]") == ["grace"]  # her last checker run: 15 min ago
    driver.save_screenshot(str(tmp_path / "room-view.png"))

    # linus passes 3.2: the page shows it by itself (no reload) within a few refreshes.
    run(fill(admin_url, [Row("linus", "3.2", True, (), 0)]))
    deadline = time.monotonic() + 30
    while grid(driver)["linus"]["3.2"] != "passed":
        assert time.monotonic() < deadline, "the page did not refresh itself"
        time.sleep(0.3)
    assert texts(driver, "#exercises tr[data-exercise='3.2'] .stuck-names") == ["1 (ada)"]

    driver.find_element("id", "csv").click()
    deadline = time.monotonic() + 30
    while not (files := [p for p in downloads.glob("room-*.csv") if p.stat().st_size]):
        assert time.monotonic() < deadline, f"no CSV downloaded: {list(downloads.iterdir())}"
        time.sleep(0.3)
    rows = list(csv.DictReader(files[0].read_text(encoding="utf-8").splitlines()))
    by = {(r["learner"], r["exercise"]): r for r in rows}
    assert len(rows) == 3 * len(shown["ada"])
    assert by["ada", "3.2"]["status"] == "trying" and by["ada", "3.2"]["stuck"] == "1"
    assert by["ada", "3.2"]["checker_runs"] == "3" and by["ada", "3.2"]["failing_checks"] == TIE
    assert by["linus", "3.2"]["status"] == "passed" and by["linus", "3.2"]["failed_runs"] == "3"
    assert by["grace", "4.1"]["failing_checks"] == "test_release_to_the_savepoint"
    assert {r["status"] for k, r in by.items() if k[1] == "10.2"} == {"not started"}


async def fill(admin_url: str, rows: list[Row], create: bool = False) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if create:
            await progress.create_table(conn)
        await write(conn, rows)
    finally:
        await conn.close()
