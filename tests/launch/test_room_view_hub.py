"""The room view as a JupyterHub service: the hub's own login decides who sees it.

hub/jupyterhub_config.py as it is, with COURSE_HUB_INSTRUCTORS=teacher: the hub starts the view
(``python -m coursedb room view``, uvicorn) as a managed service at /services/room-view/, on the
instructor's role from the credentials file ``room add`` wrote. Headless Chromium logs in to the hub
(its dummy authenticator) as ``teacher``, opens the service and goes through the hub's OAuth to the
grid, where a learner's role shows under the learner's hub name. Logged in as ``ada`` (a learner), the
hub refuses the same page.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from coursebook import browser
from coursedb import progress
from tests.helpers import run
from tests.launch import test_jupyterhub
from tests.launch.test_jupyterhub import free_port, install_proxy, start_hub, stop_hub

room_server = test_jupyterhub.room_server  # the hub test's fixture: a TCP server, roles made by `room add`

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="JupyterHub's local spawners need a POSIX system"),
    pytest.mark.skipif(browser.missing() is not None, reason=f"the room view on the hub: {browser.missing()}"),
    pytest.mark.timeout(600),
]
START_TIMEOUT = 180


def wait_for_hub(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            urllib.request.urlopen(f"{base}/hub/api/", timeout=5).close()  # 200 once the hub is behind the proxy
            return
        except urllib.error.HTTPError as not_yet:  # the proxy's 404 while the hub starts
            not_yet.close()
        except OSError:  # refused: the proxy is not up yet
            pass
        assert process.poll() is None, "the hub exited: " + log.read_text()[-2000:]
        assert time.monotonic() < deadline, "the hub did not answer"
        time.sleep(0.5)


def log_in(driver, base: str, user: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/hub/login")
    WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.ID, "username_input")))
    driver.find_element(By.ID, "username_input").send_keys(user)
    driver.find_element(By.ID, "password_input").send_keys("any")  # the test's dummy authenticator
    driver.find_element(By.ID, "login_submit").click()
    WebDriverWait(driver, 60).until(lambda d: "/hub/login" not in d.current_url)


def open_view(driver, base: str) -> str:
    """The page's text once the view (or the hub's refusal) is shown; the service may still be starting."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        driver.get(f"{base}/services/room-view/")
        text = driver.find_element("tag name", "body").text
        if "Room view" in text or "403" in text or time.monotonic() > deadline:
            return text
        time.sleep(1)


def test_the_hub_shows_the_room_view_to_the_instructor_only(room_server, tmp_path):
    proxy = install_proxy()
    if proxy is None:
        pytest.skip("configurable-http-proxy could not be installed (npm missing or the npm registry unreachable)")
    credentials, _admin_url = room_server
    learners = json.loads(credentials.read_text())["learners"]

    async def ada_records() -> None:  # as a kernel of hers would: her role, her own row
        conn = await asyncpg.connect(learners["ada"]["url"])
        try:
            failed = (progress.Failed("test_rows_of_one_transaction_tie_on_created_at", "newest_user returned 'a'"),)
            await progress.insert(conn, [progress.Outcome("", "3.2", False, failed)])
        finally:
            await conn.close()

    run(ada_records())
    hub_process, port, log = start_hub(
        credentials, tmp_path, proxy, COURSE_HUB_INSTRUCTORS="teacher", COURSE_HUB_VIEW_PORT=str(free_port())
    )
    base = f"http://127.0.0.1:{port}"
    teacher = browser.chromium(tmp_path / "teacher")
    learner = browser.chromium(tmp_path / "ada")
    try:
        wait_for_hub(base, hub_process, tmp_path / "hub.log")
        log_in(teacher, base, "teacher")
        page = open_view(teacher, base)
        assert "Room view" in page, page[-2000:] + (tmp_path / "hub.log").read_text()[-3000:]
        names = teacher.execute_script(
            "return Array.from(document.querySelectorAll('#grid tbody tr')).map(r => r.dataset.learner);"
        )
        assert names == ["ada", "grace", "linus"]  # the hub's user names, every learner role of the room
        status = teacher.execute_script(
            "const row = document.querySelector(\"#grid tr[data-learner='ada']\");"
            "const heads = Array.from(document.querySelectorAll('#grid thead tr:nth-child(2) th'));"
            "return row.querySelectorAll('td[data-status]')[heads.findIndex(h => h.textContent === '3.2')]"
            ".dataset.status;"
        )
        assert status == "trying"

        log_in(learner, base, "ada")
        refused = open_view(learner, base)
        assert "Room view" not in refused and "403" in refused, refused[-2000:]
    except Exception:
        teacher.save_screenshot(str(tmp_path / "teacher.png"))
        print("TEACHER", teacher.current_url, teacher.page_source[-1500:])
        print("HUBLOG", (tmp_path / "hub.log").read_text()[-4000:])
        raise
    finally:
        for driver in (teacher, learner):
            driver.quit()
        stop_hub(hub_process, log)
