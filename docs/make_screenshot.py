"""Regenerate docs/report.png: the report of an example run, as headless Chromium shows it.

Runs ``examples/etl.flow.md`` (a copy, in a temporary folder) with a fault plan that
makes ``save`` fail every attempt with a transient error (three retries,
then its fallback ``save-local``) and delays the first attempt of
``names``, writes the run's report, opens it in headless Chromium and saves
the top of the page (summary, graph, timeline) as a PNG::

    python docs/make_screenshot.py [OUTPUT.png]

Needs the test extra (``pip install -e '.[test]'``, for Selenium), Chromium
and its driver (Debian: ``apt-get install chromium chromium-driver``) and,
for the Graphviz layout, ``dot``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait
from wavecrest.actors import run_workflow, write_report

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 1400
FAULTS = {
    "seed": 7,
    "rules": [
        {"node": "save", "raise": "transient", "message": "disk full"},
        {"node": "names", "attempts": [1], "delay": "120ms"},
    ],
}
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-crash-reporter",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else ROOT / "docs" / "report.png"
    output = output.resolve()
    with tempfile.TemporaryDirectory() as folder:
        # A copy of the examples, run from its folder: the page shows relative paths.
        work = Path(folder)
        shutil.copytree(ROOT / "examples", work / "examples")
        os.chdir(work)
        result = run_workflow("examples/etl.flow.md", state_dir=".wavecrest-state", faults=FAULTS)
        assert result.snapshot_path is not None
        page = write_report(result.snapshot_path, work / "report.html")
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (*FLAGS, f"--user-data-dir={work / 'profile'}", f"--window-size={WIDTH},900"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(page.as_uri())
            WebDriverWait(driver, 60).until(
                lambda d: d.execute_script("return document.body.dataset.ready") == "1"
            )
            # Down to the end of the timeline.
            bottom = driver.execute_script(
                "var r = document.getElementById('tl-caption').getBoundingClientRect();"
                "return Math.ceil(r.bottom + window.scrollY + 8);"
            )
            driver.set_window_size(WIDTH, bottom)
            inner = driver.execute_script("return window.innerHeight")
            driver.set_window_size(WIDTH, bottom + (bottom - inner))
            driver.save_screenshot(str(output))
        finally:
            driver.quit()
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
