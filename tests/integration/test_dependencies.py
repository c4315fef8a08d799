"""Dependencies end to end: one root cause, one alert, recovery in the right order.

The real daemon, the sandbox's real systemd user manager, the fake Bot API over real HTTP.
The dashboard runs from a unit variant with `BindsTo=trader.service` and `After=trader.service`
(read by the daemon from systemd); the position monitor has `depends_on = ["trader"]` in the
config. Order is read from the daemon's own history events, in the order it recorded them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.sandbox import Sandbox
from supervisor.config import Config
from supervisor.history.events import Event, Kind
from supervisor.model import Status
from tests.integration import test_status_page
from tests.integration.bot import alerts_toml, texts
from tests.integration.harness import (
    Running,
    config,
    heartbeat_probe,
    http_probe,
    passes,
    running,
    target_toml,
)
from tests.integration.test_operator import after_sleep, exec_start, install_variant
from tests.integration.test_status_page import page_shows
from tests.polling import until

pytestmark = pytest.mark.sandbox
chromium = test_status_page.browser  # the status page test's headless Chromium, as a fixture

RECOVER = "enabled = true\nbackoff_s = [0, 2]\n"
NAMES = ("trader", "dashboard", "position-monitor")
ALL_BACK_S = 15.0  # the promise: all passing again within 15 s of the kill


def bound_to_trader(text: str) -> str:
    """The dashboard's unit, stopped by systemd with the trader and ordered after it."""
    return text.replace("[Unit]\n", "[Unit]\nBindsTo=trader.service\nAfter=trader.service\n", 1)


def fleet(sandbox: Sandbox, fake: FakeBotApi, monitor: str = 'depends_on = ["trader"]\n') -> Config:
    """The three with recovery; the position monitor needs what `monitor` says (the chain
    test: nothing, systemd knows)."""
    quick = "period_s = 1\n"
    return config(
        sandbox,
        target_toml(
            "trader",
            "trader.service",
            "critical = true\n" + heartbeat_probe(sandbox, "trader") + quick,
            recovery=RECOVER,
        )
        + target_toml(
            "dashboard", "dashboard.service", http_probe(sandbox) + quick, recovery=RECOVER
        )
        + target_toml(
            "position-monitor",
            "position-monitor.service",
            monitor + heartbeat_probe(sandbox, "position-monitor") + quick,
            recovery=RECOVER,
        ),
        extra=alerts_toml(fake, failure_threshold=1),
    )


@contextlib.asynccontextmanager
async def bound_fleet(sandbox: Sandbox, fake: FakeBotApi) -> AsyncIterator[Running]:
    """The daemon over the fleet with the BindsTo= dashboard, all three passing."""
    install_variant(sandbox, "dashboard", bound_to_trader)
    async with running(sandbox, fleet(sandbox, fake)) as run:
        await until(lambda: all_back(run), 20, "all three passing")
        yield run


def all_back(run: Running) -> bool:
    return all(run.target(n).back and run.target(n).blocked_by is None for n in NAMES)


async def kill_9(
    run: Running, sandbox: Sandbox, fake: FakeBotApi, name: str, within: float = ALL_BACK_S
) -> tuple[list[Event], str, str]:
    """`kill -9` of `name`: the events the daemon recorded until all are back and the two
    messages sent (an alert and its resolved notice; exactly two, a few passes later)."""
    events: list[Event] = []
    unsubscribe = run.inside.listen(events.append)
    try:
        killed = time.monotonic()
        os.kill(sandbox.main_pid(f"{name}.service"), signal.SIGKILL)
        await back_within(run, name, killed, within)
        [alert, resolved] = await fake.wait_for_messages(2, 20)
        await passes(run, 3)
    finally:
        unsubscribe()
    assert len(fake.sent) == 2, texts(fake)
    return events, str(alert["text"]), str(resolved["text"])


async def back_within(run: Running, killed: str, since: float, within: float) -> None:
    """The death seen, then all three passing again within `within` s of the kill (a deadline,
    not a timed assertion: the figure is printed)."""
    await until(lambda: not run.target(killed).back, within, f"{killed}'s death seen")
    left = within - (time.monotonic() - since)
    await until(lambda: all_back(run), left, "all three passing again")
    print(f"\nkill -9 of {killed} -> all three passing again: {time.monotonic() - since:.2f} s")


def index(events: list[Event], summary: str) -> int:
    """Where the first event whose words start with `summary` was recorded."""
    return next(i for i, e in enumerate(events) if e.summary.startswith(summary))


def restarted(events: list[Event]) -> list[str | None]:
    """The targets whose recovery ended `done`, in the order recorded."""
    return [e.target for e in events if e.kind is Kind.RECOVERY and e.data.get("result") == "done"]


def restart_begun(events: list[Event], name: str) -> int:
    """Where the first restart of `name` was recorded as begun (not yet its end).

    Its end is no anchor for what follows: the root's first probe can pass on the heartbeat
    its old process wrote a moment before the kill, before the job's end is heard.
    """
    return next(
        i
        for i, e in enumerate(events)
        if e.kind is Kind.RECOVERY
        and e.target == name
        and e.data.get("action") == "restart"
        and "result" not in e.data
    )


async def test_kill_9_of_the_root_one_alert_root_first_then_dependants_one_resolved(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    async with bound_fleet(sandbox, fake) as run:
        assert run.daemon.fleet.model.relations.bound["dashboard"] == ("trader",)
        events, alert, resolved = await kill_9(run, sandbox, fake, "trader")
        assert "WARNING</b> trader" in alert
        assert "dependants affected: dashboard; position-monitor" in alert
        assert "RESOLVED</b> trader" in resolved
        assert "dashboard back at" in resolved
        assert "position-monitor back at" in resolved

        # One root cause: the dependants were blocked by it, not alerted or restarted alone.
        blocked = index(events, "dashboard blocked by trader")
        assert index(events, "position-monitor blocked by trader") >= 0
        trader_begun = restart_begun(events, "trader")
        freed = index(events, "dashboard freed: trader is back")
        dashboard_restart = index(events, "restart dashboard (attempt 1/3)")
        assert blocked < trader_begun < freed < dashboard_restart, [e.summary for e in events]
        # systemd stopped the dashboard (BindsTo=) and did not start it again: we did. The
        # position monitor never failed: nothing to restart.
        assert restarted(events) == ["trader", "dashboard"]

        code, doc = await run.get("/health")
        assert code == 200
        assert all(doc["checks"][n][0]["blocked_by"] is None for n in NAMES)
        assert doc["checks"]["trader"][0]["dependants"] == ["dashboard", "position-monitor"]
        _code, metrics = await run.get_text("/metrics")
        assert 'supervisor_target_blocked{by="",target="dashboard"} 0.0' in metrics


async def test_a_dependant_failing_on_its_own_is_alerted_and_restarted_as_before(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    async with bound_fleet(sandbox, fake) as run:
        trader_pid = sandbox.main_pid("trader.service")
        events, alert, resolved = await kill_9(run, sandbox, fake, "dashboard")
        assert "WARNING</b> dashboard" in alert
        assert "dependants" not in alert
        assert "RESOLVED</b> dashboard" in resolved
        assert restarted(events) == ["dashboard"]
        assert not [e for e in events if "blocked by" in e.summary]
        assert sandbox.main_pid("trader.service") == trader_pid
        assert run.status("trader") is Status.PASS


async def test_while_the_root_is_down_health_metrics_and_the_page_say_blocked_by_it(
    sandbox: Sandbox, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    browser = chromium

    cfg = config(
        sandbox,
        target_toml("trader", "trader.service", heartbeat_probe(sandbox, "trader"))
        + target_toml(
            "position-monitor",
            "position-monitor.service",
            'depends_on = ["trader"]\n' + heartbeat_probe(sandbox, "position-monitor"),
        ),
    )  # recovery off: the trader stays down while the test looks

    def card(driver: Any, name: str) -> Any:
        return driver.find_element(By.CSS_SELECTOR, f'article[data-target="{name}"]')

    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass")
        await asyncio.to_thread(browser.get, run.url + "/")
        await page_shows(
            browser, lambda d: "position-monitor" in card(d, "trader").text, "needed by"
        )
        os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
        await until(lambda: run.target("position-monitor").blocked_by == "trader", 10, "blocked")

        code, doc = await run.get("/health")
        entry = doc["checks"]["position-monitor"][0]
        assert (code, entry["blocked_by"], entry["status"]) == (200, "trader", "pass")
        _code, metrics = await run.get_text("/metrics")
        assert 'supervisor_target_blocked{by="trader",target="position-monitor"} 1.0' in metrics

        def says_blocked(d: Any) -> bool:
            blocked = card(d, "position-monitor").find_elements(By.CSS_SELECTOR, ".blocked")
            return [b.text for b in blocked] == ["blocked by trader"]

        await page_shows(browser, says_blocked, "blocked by trader")
        assert "needed by\nposition-monitor" in await asyncio.to_thread(
            lambda: card(browser, "trader").text
        )

        # Under the root's entry: the dependants it holds down, each with its own status.
        def under_trader(d: Any) -> list[list[str]]:
            items = card(d, "trader").find_elements(By.CSS_SELECTOR, ".held-down .dependant")
            return [
                [i.get_attribute("data-target"), i.get_attribute("data-status")]
                + [
                    str(s.get_attribute("textContent"))
                    for s in i.find_elements(By.TAG_NAME, "span")
                ]
                for i in items
            ]

        await page_shows(browser, lambda d: len(under_trader(d)) == 1, "the monitor under trader")
        [[name, status, *spans]] = await asyncio.to_thread(under_trader, browser)
        assert (name, status) == ("position-monitor", "pass")
        assert spans[:2] == ["position-monitor", "pass"], spans
        assert spans[2] == entry["output"], spans  # its own words, as /health says them
        head = await asyncio.to_thread(
            lambda: card(browser, "trader").find_element(By.CSS_SELECTOR, ".held-down-head").text
        )
        assert head == "blocked until trader is back:"

        sandbox.systemctl("start", "trader.service")  # back: nothing is held down any more
        await page_shows(
            browser,
            lambda d: not card(d, "trader").find_elements(By.CSS_SELECTOR, ".held-down"),
            "nothing under trader once it is back",
        )


# -- a chain: several dependants restarted in order -------------------------------------------


def monitor_after_dashboard(sandbox: Sandbox) -> Callable[[str], str]:
    """The position monitor stopped by systemd with the trader and started after the dashboard
    (it posts to it); each start drops the heartbeat of the run before (none from before
    counts) and begins its work 1 s after its process, so its grace is seen."""
    beat = sandbox.heartbeat_path("position-monitor")

    def edit(text: str) -> str:
        unit = "[Unit]\nBindsTo=trader.service\nAfter=trader.service dashboard.service\n"
        line = exec_start(text)
        command = line.removeprefix("ExecStart=")
        start = f'ExecStart=/bin/sh -c "rm -f {beat}; sleep 1; exec {command}"'
        return text.replace("[Unit]\n", unit, 1).replace(line, start)

    return edit


def after(events: list[Event], first: int, target: str) -> list[Event]:
    """`target`'s status changes recorded after position `first`, up to its first pass."""
    out = []
    for e in events[first:]:
        if e.kind is Kind.STATUS and e.target == target and "to" in e.data:
            out.append(e)
            if e.data["to"] == "pass":
                break
    return out


async def test_two_dependants_down_with_the_root_come_back_in_order_each_with_its_grace(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    # Both stopped by systemd with the trader (BindsTo=); the monitor also needs the dashboard
    # (After=). Each dependant starts its work 1 s after its process: its grace is seen.
    install_variant(sandbox, "dashboard", lambda t: after_sleep(1)(bound_to_trader(t)))
    install_variant(sandbox, "position-monitor", monitor_after_dashboard(sandbox))
    async with running(sandbox, fleet(sandbox, fake, monitor="")) as run:
        await until(lambda: all_back(run), 20, "all three passing")
        relations = run.daemon.fleet.model.relations
        assert relations.needs["position-monitor"] == ("trader", "dashboard")
        events, alert, resolved = await kill_9(run, sandbox, fake, "trader", within=30)

    # Exactly one alert naming the root and both dependants, one resolved notice with both.
    assert "WARNING</b> trader" in alert
    assert "dependants affected: dashboard; position-monitor" in alert
    assert "RESOLVED</b> trader" in resolved
    assert "dashboard back at" in resolved
    assert "position-monitor back at" in resolved

    # The root first; then the dashboard, freed by it; the monitor waits for the dashboard.
    words = [e.summary for e in events]
    print("\n".join(words))  # shown when an assertion below fails
    assert sorted(map(str, restarted(events))) == ["dashboard", "position-monitor", "trader"]
    trader = restart_begun(events, "trader")
    dashboard_freed = index(events, "dashboard freed: trader is back")
    dashboard = restart_begun(events, "dashboard")
    dashboard_done = index(events, "restart dashboard (attempt 1/3): done")
    monitor_waits = index(events, "position-monitor blocked by dashboard")
    monitor_freed = index(events, "position-monitor freed: dashboard is back")
    monitor = restart_begun(events, "position-monitor")
    assert index(events, "position-monitor blocked by trader") < trader
    assert trader < dashboard_freed < dashboard < dashboard_done < monitor_freed < monitor
    assert trader < monitor_waits < monitor_freed

    # Each dependant got its start-up grace: "starting" (warn) after its restart, never fail,
    # then pass; the monitor was freed only once the dashboard passed past its grace.
    for name, freed in (("dashboard", dashboard_freed), ("position-monitor", monitor_freed)):
        seen = [e.data["to"] for e in after(events, freed, name)]
        reasons = [str(e.data["reason"]) for e in after(events, freed, name)]
        assert seen[-1] == "pass" and "fail" not in seen, name
        # A status event is a change of level. When a pass saw the restart's job queued
        # first ("job ... under way", warn), the start made it "starting" at the same
        # level, with no event of its own (seen in a CI run on a loaded host): the grace
        # is shown then by the warn that never became fail while its work was not up.
        assert any(r.startswith("starting (") for r in reasons) or (
            seen == ["warn", "pass"] and reasons[0].endswith("under way")
        ), (name, reasons)
    dashboard_pass = events.index(after(events, dashboard_freed, "dashboard")[-1])
    assert dashboard_pass < monitor_freed
