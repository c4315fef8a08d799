"""The status page in a real browser: headless Chromium (Debian's chromium + chromium-driver)
driven by selenium, against the daemon watching the sandbox's demo fleet.

Selenium blocks: every browser call runs in a thread so the daemon, in this event loop,
goes on serving the page while the test waits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devtools.sandbox import Sandbox
from supervisor.config import Secret
from supervisor.model import Status
from tests.integration.harness import config, heartbeat_probe, http_probe, running, target_toml
from tests.polling import until

pytestmark = pytest.mark.sandbox
HOSTILE = "<img src=x onerror=alert(1)>"
# Where the picture goes: a temporary directory, never the checkout; `python -m
# devtools.screenshot` sets this to refresh docs/status-page.png on purpose.
SCREENSHOT_ENV = "STATUS_PAGE_SCREENSHOT"
CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
KEY = Secret("a-long-enough-page-test-key")


class HostileApp:
    """An HTTP endpoint whose JSON says what the test wants, markup included."""

    def __init__(self) -> None:
        self.status = HOSTILE
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"status": app.status}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostileApp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium; skipped (saying why) where the packages are not installed."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def fleet(sandbox: Sandbox, hostile_port: int) -> str:
    """The demo fleet; position-monitor also asks the hostile endpoint."""
    hostile = f'[[targets.probes]]\ntype = "http"\nurl = "http://127.0.0.1:{hostile_port}/"\n'
    hostile += 'expect_json = { status = "ok" }\nfailure_threshold = 1\nperiod_s = 1\n'
    return (
        target_toml(
            "trader", "trader.service", "critical = true\n" + heartbeat_probe(sandbox, "trader")
        )
        + target_toml(
            "dashboard",
            "dashboard.service",
            f"ports = [{sandbox.dashboard_port}]\n" + http_probe(sandbox),
            recovery="enabled = true",
        )
        + target_toml(
            "position-monitor",
            "position-monitor.service",
            heartbeat_probe(sandbox, "position-monitor") + hostile,
        )
    )


async def page_shows(
    driver: Any, pred: Callable[[Any], bool], what: str, limit: float = 15
) -> None:
    """Poll the page (in a thread) until `pred(driver)` holds."""
    await until(
        lambda: _safe(pred, driver), limit, f"the page to show {what}", step=0.1, in_thread=True
    )


def _safe(pred: Callable[[Any], bool], driver: Any) -> bool:
    from selenium.common.exceptions import WebDriverException

    try:
        return pred(driver)
    except WebDriverException:
        return False  # an element re-rendered between finding and reading it


def card_status(driver: Any, name: str) -> str:
    from selenium.webdriver.common.by import By

    card = driver.find_element(By.CSS_SELECTOR, f'article[data-target="{name}"]')
    return str(card.find_element(By.CSS_SELECTOR, ".status").text).lower()


def card_output(driver: Any, name: str) -> str:
    from selenium.webdriver.common.by import By

    card = driver.find_element(By.CSS_SELECTOR, f'article[data-target="{name}"]')
    return str(card.find_element(By.CSS_SELECTOR, ".output").text)


async def test_the_page_shows_the_fleet_live_and_never_runs_unit_output(
    sandbox: Sandbox, browser: Any, tmp_path: Path
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    with HostileApp() as hostile:
        # Two failures make a target flapping here (3 by default): the page shows it sooner.
        cfg = config(sandbox, fleet(sandbox, hostile.port), extra="[alerts]\nflap_count = 2\n")
        cfg = dataclasses.replace(cfg, http=dataclasses.replace(cfg.http, api_key=KEY))
        async with running(sandbox, cfg) as run:
            names = ["trader", "dashboard", "position-monitor"]
            await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass")
            await until(lambda: run.status("position-monitor") is Status.FAIL, 15, "hostile fail")
            await asyncio.to_thread(browser.get, run.url + "/")

            # Every target and its status, as the daemon has it.
            def statuses_match(d: Any) -> bool:
                return all(card_status(d, n) == run.status(n).value for n in names)

            await page_shows(browser, statuses_match, "every target's status")

            # The hostile output is text: shown literally, no element made from it, no alert.
            await page_shows(browser, lambda d: HOSTILE in card_output(d, "position-monitor"),
                             "the hostile output as text")  # fmt: skip
            images = await asyncio.to_thread(browser.find_elements, By.TAG_NAME, "img")
            assert images == []
            with pytest.raises(NoAlertPresentException):
                await asyncio.to_thread(lambda: browser.switch_to.alert.text)
            timeline = await asyncio.to_thread(lambda: browser.find_element(By.ID, "timeline").text)
            assert HOSTILE in timeline
            hostile.status = "ok"
            await page_shows(browser, lambda d: card_status(d, "position-monitor") == "pass",
                             "position-monitor pass again")  # fmt: skip
            await people_on_the_page(sandbox, run, browser, hostile)

            # A fault turns the trader fail on the page without a reload.
            await asyncio.to_thread(browser.execute_script, "window.loadedOnce = true")
            pid = sandbox.main_pid("trader.service")
            os.kill(pid, signal.SIGKILL)
            await page_shows(browser, lambda d: card_status(d, "trader") == "fail", "trader fail")
            assert await asyncio.to_thread(browser.execute_script, "return window.loadedOnce")
            overall = await asyncio.to_thread(lambda: browser.find_element(By.ID, "overall").text)
            assert "FAIL" in overall

            # Back to health (a person restarts it), then the picture for the README.
            await asyncio.to_thread(sandbox.systemctl, "restart", "trader.service")
            await page_shows(browser, lambda d: card_status(d, "trader") == "pass", "trader pass")
            await page_shows(
                browser,
                lambda d: "trader" in d.find_element(By.ID, "incidents").text,
                "the trader's incident",
            )
            await page_shows(
                browser,
                lambda d: "never" not in d.find_element(By.ID, "targets").text,
                "a probe run for every target",
                limit=30,  # figures that change without an event are polled every 10 s
            )
            shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "status-page.png")
            size = await asyncio.to_thread(save_screenshot, browser, shot)
    assert size > 10_000


def people_line(driver: Any, name: str, kind: str) -> str:
    """The text of a target's hold, stop, start or flapping line; "" when it has none."""
    from selenium.webdriver.common.by import By

    card = driver.find_element(By.CSS_SELECTOR, f'article[data-target="{name}"]')
    lines = card.find_elements(By.CSS_SELECTOR, f".people.{kind}")
    return str(lines[0].text) if lines else ""


async def people_on_the_page(sandbox: Sandbox, run: Any, driver: Any, app: HostileApp) -> None:
    """Flapping, a hold and a stop on request each have their own line, as text."""
    from selenium.webdriver.common.by import By

    app.status = HOSTILE  # its second failure: flapping (flap_count = 2)
    await page_shows(driver, lambda d: card_status(d, "position-monitor") == "fail", "fail again")
    app.status = "ok"
    flapping = re.compile(r"^flapping: 2 failures in (\d+m )?\d+s$")
    await page_shows(
        driver,
        lambda d: bool(flapping.match(people_line(d, "position-monitor", "flapping"))),
        "position-monitor flapping",
    )
    url = f"{run.url}/targets/position-monitor/hold"
    body = json.dumps({"for": "20m", "reason": HOSTILE}).encode()
    code = await asyncio.to_thread(_call, url, "POST", body)
    assert code == 200
    held = re.compile(r"^held until \d\d:\d\d \(" + re.escape(HOSTILE) + r"\) by http:")
    await page_shows(
        driver, lambda d: bool(held.match(people_line(d, "position-monitor", "hold"))), "the hold"
    )
    assert await asyncio.to_thread(driver.find_elements, By.TAG_NAME, "img") == []  # text only
    assert await asyncio.to_thread(_call, url, "DELETE", None) == 200
    await page_shows(driver, lambda d: people_line(d, "position-monitor", "hold") == "", "released")
    # A stop on request: warn, its own line, no restart (the dashboard's recovery is on).
    await asyncio.to_thread(sandbox.systemctl, "stop", "dashboard.service")
    stopped = re.compile(r"^stopped on request at \d\d:\d\d:\d\d$")
    await page_shows(
        driver,
        lambda d: (
            card_status(d, "dashboard") == "warn"
            and bool(stopped.match(people_line(d, "dashboard", "stopped")))
        ),
        "the dashboard stopped on request",
    )
    assert sandbox.main_pid("dashboard.service") == 0
    await asyncio.to_thread(sandbox.systemctl, "start", "dashboard.service")
    await page_shows(
        driver,
        lambda d: (
            card_status(d, "dashboard") == "pass" and people_line(d, "dashboard", "stopped") == ""
        ),
        "the dashboard started again",
    )


def _call(url: str, method: str, body: bytes | None) -> int:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"X-API-Key": KEY.get_secret_value()}
    )
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return int(resp.status)


def save_screenshot(driver: Any, shot: Path) -> int:
    """The whole page, at a laptop's width, saved to `shot`; its size in bytes."""
    driver.set_window_size(1280, 2400)
    # The window's height includes the browser's own bars: add them to the page's height.
    bottom = driver.execute_script(
        "return document.body.getBoundingClientRect().bottom + window.outerHeight"
        " - window.innerHeight"
    )
    driver.set_window_size(1280, min(int(bottom) + 24, 2400))
    shot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shot))
    return shot.stat().st_size


MARKUP = "<b>x</b> FATAL lost connection to exchange"


async def test_an_incident_opens_to_show_its_cause_and_last_lines_as_text(
    sandbox: Sandbox, browser: Any, tmp_path: Path
) -> None:
    """A unit prints markup, then is killed: its incident opens to the cause and the line,
    shown literally (no element made of it)."""
    from selenium.webdriver.common.by import By

    out = tmp_path / "shouter.log"
    unit = "shouter.service"
    sandbox.install_unit(
        unit,
        f"[Service]\nExecStart=/bin/sh -c 'echo \"{MARKUP}\"; exec sleep 600'\n"
        f"StandardOutput=append:{out}\n",
    )
    sandbox.systemctl("reset-failed", unit, check=False)
    sandbox.systemctl("start", unit)
    try:
        async with running(sandbox, config(sandbox, target_toml("shouter", unit))) as run:
            await until(lambda: run.status("shouter") is Status.PASS, 15, "shouter pass")
            await until(lambda: out.exists() and MARKUP in out.read_text(), 10, "the line")
            os.kill(sandbox.main_pid(unit), signal.SIGKILL)
            await asyncio.to_thread(browser.get, run.url + "/")

            def opened(d: Any) -> bool:
                box = d.find_element(By.CSS_SELECTOR, "#incidents details.cause")
                if not box.get_attribute("open"):
                    box.find_element(By.TAG_NAME, "summary").click()
                summary = box.find_element(By.TAG_NAME, "summary").text
                shown = box.find_element(By.CSS_SELECTOR, "pre.log").text
                return "killed by SIGKILL" in summary and MARKUP in shown

            await page_shows(browser, opened, "the incident opened to its cause and lines", 20)
            marked = await asyncio.to_thread(browser.find_elements, By.CSS_SELECTOR, "#incidents b")
            assert marked == []  # the line's <b> is text, never an element
    finally:
        sandbox.systemctl("stop", unit, check=False)
        sandbox.systemctl("reset-failed", unit, check=False)
