"""Run reports in a real browser: headless Chromium (the system's), driven by Selenium.

Each page must load with no console error, load nothing from anywhere, and
show every node: for a small run every node's box in the graph, for a
10,000-node run the right counts. Chromium runs with a fresh profile folder
and is shut down after the module, every one of its processes waited for.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reportruns import SCRIPT, big_flow, custom_type_run, runs
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from wavecrest.actors import run_workflow
from wavecrest.actors._report import render_plan_report, write_report
from wavecrest.core import (
    load_workflow,
    parse_workflow,
    plan,
)
from wavecrest.core._graphview import MAX_BOXES
from wavecrest.core._snapshot import read_snapshot

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Without the networking flags the closed network refuses many connections.
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
    "--window-size=1400,1000",
)
#: The longest a page may take to be ready (a bound against hangs, not a measurement).
READY = 60

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason="Chromium is not installed (Debian: apt-get install chromium chromium-driver)",
    ),
]


def profile_processes(profile: Path) -> list[int]:
    """The ids of the processes whose command line names ``profile`` (this Chromium's)."""
    found = []
    needle = str(profile).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                if needle in file.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def wait_for_exit(pids: list[int], timeout: float) -> list[int]:
    """Wait (on pidfds, no polling) for each process to exit; the ids of those still alive."""
    alive = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                alive.append(pid)
        finally:
            os.close(fd)
    return alive


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(READY)
    driver.set_script_timeout(READY)
    try:
        yield driver
    finally:
        started = profile_processes(profile)
        driver.quit()
        alive = wait_for_exit(started, timeout=20)
        for pid in alive:  # ours: started by this fixture, under its own profile folder
            os.kill(pid, signal.SIGKILL)
        assert alive == [], f"Chromium processes left running after quit: {alive}"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return runs(tmp_path_factory)


def load(driver: WebDriver, page: Path) -> list[dict[str, Any]]:
    """Open ``page`` and wait until its script is done; the console's errors so far."""
    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, READY).until(
        lambda d: d.execute_script("return document.body.getAttribute('data-ready')") == "1"
    )
    return errors(driver)


def errors(driver: WebDriver) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def js(driver: WebDriver, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def assert_every_node_visible(driver: WebDriver, node_ids: list[str]) -> None:
    for node_id in node_ids:
        box = driver.find_element(By.ID, f"n-{node_id}")
        assert box.is_displayed(), node_id
        rect = js(driver, "return arguments[0].getBoundingClientRect().toJSON()", box)
        assert rect["width"] > 0, node_id
        assert rect["height"] > 0, node_id
        assert node_id in js(driver, "return arguments[0].textContent", box)


@pytest.mark.parametrize("layout", ["dot", "python"])
@pytest.mark.parametrize("name", ["completed", "failed", "cancelled", "paused", "resumed"])
def test_each_kind_of_run_loads_cleanly_and_shows_every_node(
    browser: WebDriver, made: dict[str, Path], tmp_path: Path, name: str, layout: str
) -> None:
    if layout == "dot" and shutil.which("dot") is None:
        pytest.skip("Graphviz (dot) is not installed")
    record = read_snapshot(made[name])
    page = write_report(made[name], tmp_path / "report.html", layout=layout)
    assert load(browser, page) == []
    flow = plan(parse_workflow(record.source))
    assert_every_node_visible(browser, list(flow.nodes))
    assert browser.find_element(By.ID, "run-status").text == record.status
    assert js(browser, "return performance.getEntriesByType('resource').length") == 0
    rows = len(set(record.results) | set(flow.static_paths()))
    assert browser.find_element(By.ID, "page-info").text == f"1\u2013{rows} of {rows}"
    canvas = browser.find_element(By.ID, "tl-canvas")
    assert canvas.size["width"] > 600
    assert canvas.size["height"] >= 120
    segments = browser.find_elements(By.CSS_SELECTOR, "#segments .segment-row")
    assert len(segments) == (2 if name == "resumed" else 0)


def test_markup_from_the_run_is_shown_as_text_and_never_runs(
    browser: WebDriver, made: dict[str, Path], tmp_path: Path
) -> None:
    page = write_report(made["failed"], tmp_path / "report.html")
    assert load(browser, page) == []
    assert js(browser, "return typeof window.pwned") == "undefined"
    row = browser.find_element(By.XPATH, "//table[@id='nodes-table']//td[text()='boom']")
    row.click()
    assert browser.find_element(By.CSS_SELECTOR, "#detail h3").text == "boom"
    message = browser.find_element(By.CSS_SELECTOR, "#detail .error-message")
    assert js(browser, "return arguments[0].textContent", message) == f"InjectedFault: {SCRIPT}"
    summaries = browser.find_elements(By.CSS_SELECTOR, "details.error summary .message")
    assert SCRIPT in [js(browser, "return arguments[0].textContent", s) for s in summaries]
    assert js(browser, "return document.querySelectorAll('img').length") == 0
    assert js(browser, "return typeof window.pwned") == "undefined"
    assert errors(browser) == []


def test_clicking_a_node_in_the_graph_shows_its_attempts(
    browser: WebDriver, made: dict[str, Path], tmp_path: Path
) -> None:
    page = write_report(made["completed"], tmp_path / "report.html")
    assert load(browser, page) == []
    browser.find_element(By.ID, "n-save").click()
    assert browser.find_element(By.CSS_SELECTOR, "#detail h3").text == "save"
    cells = browser.find_elements(By.CSS_SELECTOR, "#detail table tr td:first-child")
    assert [c.text for c in cells] == ["1", "2", "3", "4", "fallback save-local"]
    selected = browser.find_element(By.CSS_SELECTOR, "#nodes-table tr.selected td")
    assert selected.text == "save"
    assert "selected" in (browser.find_element(By.ID, "n-save").get_attribute("class") or "")
    assert errors(browser) == []


def test_hovering_the_timeline_describes_the_row_and_clicking_selects_it(
    browser: WebDriver, made: dict[str, Path], tmp_path: Path
) -> None:
    page = write_report(made["completed"], tmp_path / "report.html")
    assert load(browser, page) == []
    scroller = browser.find_element(By.ID, "tl-scroller")
    size = scroller.size
    # The label of the first row: 30 px of time axis, then rows of 24 px.
    dx, dy = 60 - size["width"] // 2, 30 + 12 - size["height"] // 2
    ActionChains(browser).move_to_element_with_offset(scroller, dx, dy).perform()
    tip = browser.find_element(By.ID, "tl-tip")
    assert tip.is_displayed()
    assert tip.text.splitlines()[0] == "users · source:file · succeeded"
    assert tip.text.splitlines()[1].startswith("1 attempt, ran ")
    ActionChains(browser).move_to_element_with_offset(scroller, dx, dy).click().perform()
    assert browser.find_element(By.CSS_SELECTOR, "#detail h3").text == "users"
    ActionChains(browser).move_to_element_with_offset(scroller, 0, 0).perform()
    ActionChains(browser).move_to_element(browser.find_element(By.ID, "graph")).perform()
    assert not browser.find_element(By.ID, "tl-tip").is_displayed()
    assert errors(browser) == []


def test_a_fallback_in_the_graph_shows_the_node_it_stood_in_for(
    browser: WebDriver, made: dict[str, Path], tmp_path: Path
) -> None:
    page = write_report(made["completed"], tmp_path / "report.html")
    assert load(browser, page) == []
    browser.find_element(By.ID, "n-save-local").click()
    assert browser.find_element(By.CSS_SELECTOR, "#detail h3").text == "save"
    assert errors(browser) == []


def test_a_run_whose_workflow_no_longer_plans_loads_without_a_graph(
    browser: WebDriver, tmp_path: Path
) -> None:
    result = custom_type_run(tmp_path)
    assert result.snapshot_path is not None
    page = write_report(result.snapshot_path, tmp_path / "report.html")
    assert load(browser, page) == []
    assert browser.find_elements(By.ID, "graph") == []
    assert "unknown node type 'transform:shout'" in browser.find_element(By.CLASS_NAME, "note").text
    assert browser.find_element(By.ID, "page-info").text == "1\u20132 of 2"


def test_a_plan_page_loads_cleanly_and_shows_every_node(browser: WebDriver, tmp_path: Path) -> None:
    flow = plan(load_workflow(EXAMPLES / "reports.flow.md"))
    page = tmp_path / "plan.html"
    page.write_text(render_plan_report(flow), encoding="utf-8")
    assert load(browser, page) == []
    assert_every_node_visible(browser, list(flow.nodes))
    assert browser.find_elements(By.ID, "timeline") == []


def test_a_run_of_ten_thousand_nodes_loads_summarised_with_the_right_counts(
    browser: WebDriver, tmp_path: Path
) -> None:
    flow = tmp_path / "big.flow.md"
    flow.write_text(big_flow(10_000))
    result = run_workflow(flow, state_dir=tmp_path / "state")
    assert result.status == "completed"
    assert result.snapshot_path is not None
    page = write_report(result.snapshot_path, tmp_path / "big.html")
    assert page.stat().st_size < 8_000_000  # about 2 MB: see the README
    assert load(browser, page) == []
    assert browser.find_element(By.ID, "node-total").text == "10,000"
    chips = browser.find_elements(By.CSS_SELECTOR, "#card-nodes .chip")
    assert [c.text for c in chips] == ["10,000 succeeded"]
    drawn = browser.find_elements(By.CSS_SELECTOR, "#graph g.node")
    assert len(drawn) == MAX_BOXES  # one box per group of waves
    assert "10,000 nodes" in browser.find_element(By.ID, "graph-section").text
    assert browser.find_element(By.ID, "page-info").text == "1\u201350 of 10,000"
    assert browser.find_element(By.ID, "tl-caption").text.startswith("10,000 nodes ran")
    # Scroll the timeline to its end and page the table: still no error.
    js(browser, "var s = document.getElementById('tl-scroller'); s.scrollTop = s.scrollHeight;")
    browser.find_element(By.ID, "page-next").click()
    assert browser.find_element(By.ID, "page-info").text == "51\u2013100 of 10,000"
    assert errors(browser) == []
