"""Headless Chromium driven by Selenium, for the checks and benchmarks that need a real browser.

Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver), or
COURSE_BROWSER / COURSE_CHROMEDRIVER. The driver path is explicit: Selenium Manager is never
consulted and downloads nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BROWSER = os.environ.get("COURSE_BROWSER", "/usr/bin/chromium")
DRIVER = os.environ.get("COURSE_CHROMEDRIVER", "/usr/bin/chromedriver")


def missing() -> str | None:
    """None if Chromium and its driver are here, else a sentence for a skip reason."""
    absent = [p for p in (BROWSER, DRIVER) if not os.access(p, os.X_OK)]
    if not absent:
        return None
    return (
        f"no browser: {', '.join(absent)} not found; install Debian's chromium and chromium-driver "
        "(or set COURSE_BROWSER and COURSE_CHROMEDRIVER)"
    )


def chromium(folder: Path, width: int = 1400, height: int = 1800, downloads: Path | None = None) -> Any:
    """A headless Chromium with its profile (and logs, and ``downloads``) in ``folder``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    folder.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--window-size={width},{height}", f"--user-data-dir={folder / 'chromium-profile'}",
    ]  # fmt: skip
    for flag in flags:
        options.add_argument(flag)
    service = Service(executable_path=DRIVER, log_output=str(folder / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    if downloads is not None:
        downloads.mkdir(parents=True, exist_ok=True)
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver
