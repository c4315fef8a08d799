"""The fleet layer against the real thing: the daemon's live /metrics under promtool, a real
Prometheus server scraping it with the shipped rules, and a real Alertmanager routing what
they raise to a fake Telegram (contrib/, docs/FLEET.md).
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.net import free_port
from devtools.sandbox import Sandbox
from supervisor.model import Status
from tests.fleet.contrib import (
    JOB,
    SYNTHETIC,
    dashboard_exprs,
    grafana_to_promql,
    metric_names,
    recorded,
    rules,
    run,
    tool,
)
from tests.fleet.servers import Alertmanager, Prometheus
from tests.integration.harness import (
    Running,
    config,
    fleet_toml,
    heartbeat_probe,
    http_probe,
    running,
    target_toml,
)
from tests.polling import until

pytestmark = pytest.mark.sandbox
FAST_RECOVERY = "backoff_s = [0, 0.5, 0.5]\nwindow_s = 120\nmax_attempts = 3"
# Trips at the first load sample: host memory is always over 1 %.
TRIPPING = (
    "[breaker]\ntrip_memory_percent = 1\nresume_memory_percent = 0.5\nsustain_s = 0\n"
    "cooldown_s = 600\nsample_interval_s = 0.1\n"
)


def eventful_targets(sandbox: Sandbox) -> str:
    """The demo fleet with every kind of probe, recovery on the trader, a probe that fails
    (nobody listens on its port) and a missing unit."""
    resources = '[[targets.probes]]\ntype = "resources"\nmemory_max_mb = 4096\nperiod_s = 0.2\n'
    closed = f'[[targets.probes]]\ntype = "tcp"\nport = {free_port()}\nperiod_s = 0.2\n'
    return (
        target_toml(
            "trader",
            "trader.service",
            "critical = true\n" + heartbeat_probe(sandbox, "trader"),
            recovery=FAST_RECOVERY,
        )
        + target_toml(
            "dashboard",
            "dashboard.service",
            f"ports = [{sandbox.dashboard_port}]\n" + http_probe(sandbox, period_s=0.2),
        )
        + target_toml(
            "position-monitor",
            "position-monitor.service",
            heartbeat_probe(sandbox, "position-monitor") + resources + closed,
        )
        + target_toml("ghost", "ghost.service")
    )


def sample_value(text: str, prefix: str) -> float:
    """The value of the one sample line of /metrics that starts with `prefix`."""
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


async def eventful_metrics(sandbox: Sandbox) -> str:
    """/metrics after probes of every kind, a failing target, a recovery and a breaker trip."""
    targets = eventful_targets(sandbox)
    quiet = config(sandbox, targets)
    async with running(sandbox, quiet) as run:
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass")
        await until(lambda: run.status("ghost") is Status.FAIL, 10, "the missing unit failing")
        os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
        restarted = {"target": "trader", "action": "restart", "result": "done"}
        await until(
            lambda: run.inside.sample("supervisor_recovery_actions_total", restarted),
            15,
            "the trader restarted by recovery",
        )
        memory = {"target": "position-monitor"}
        await until(
            # NaN (not measured yet) is not a reading
            lambda: (
                not math.isnan(
                    run.inside.sample("supervisor_unit_memory_bytes", memory) or math.nan
                )
            ),
            10,
            "a resources probe",
        )
        await until(
            lambda: run.status("position-monitor") is Status.FAIL, 10, "the tcp probe failing"
        )
        await run.reload(config(sandbox, targets, breaker=TRIPPING))
        await until(lambda: run.inside.breaker_open, 10, "the breaker to trip after the reload")
        await until(lambda: run.status("ghost") is Status.FAIL, 10, "the missing unit failing")
        _, text = await run.get_text("/metrics")
        return text


@pytest.fixture(scope="module")
def live_metrics(sandbox: Sandbox) -> Iterator[str]:
    """The real daemon's /metrics, taken once for the tests below."""
    try:
        yield asyncio.run(eventful_metrics(sandbox))
    finally:
        sandbox.restore_fleet()


def test_live_metrics_pass_promtool_check_metrics(live_metrics: str) -> None:
    promtool = tool("promtool")
    # The counters the check must see non-zero: a failure, a recovery, a breaker trip.
    assert sample_value(live_metrics, 'supervisor_target_status{status="fail",target="ghost"}') == 1
    assert (
        sample_value(
            live_metrics,
            'supervisor_recovery_actions_total{action="restart",result="done",target="trader"}',
        )
        >= 1
    )
    assert sample_value(live_metrics, "supervisor_breaker_trips_total ") == 1
    assert sample_value(live_metrics, "supervisor_breaker_open ") == 1
    result = run(promtool, "check", "metrics", stdin=live_metrics)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


# What eventful_targets configures: each target's probe types.
PROBE_TYPES = {
    ("trader", "heartbeat"),
    ("dashboard", "http"),
    ("position-monitor", "heartbeat"),
    ("position-monitor", "resources"),
    ("position-monitor", "tcp"),
}


def test_every_configured_probe_has_its_series_even_if_it_never_failed(live_metrics: str) -> None:
    failures = {
        (labels["target"], labels["type"]): value
        for line in live_metrics.splitlines()
        if line.startswith("supervisor_probe_failures_total{")
        for labels, value in [parse_sample(line)]
    }
    assert set(failures) == PROBE_TYPES
    assert failures[("position-monitor", "tcp")] > 0  # nobody listens on its port
    # The 0.1.0 daemon had no series for a probe that never failed: rate() drew "no data".
    assert 0 in failures.values(), failures


def parse_sample(line: str) -> tuple[dict[str, str], float]:
    """The labels and value of one sample line."""
    head, value = line.rsplit(" ", 1)
    pairs = head[head.index("{") + 1 : -1].split(",")
    return {k: v.strip('"') for k, v in (pair.split("=", 1) for pair in pairs)}, float(value)


def exported(text: str) -> set[str]:
    """Every sample name in an exposition (histograms' _bucket/_sum/_count, counters' _total)."""
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"
    }


def test_every_name_in_the_rules_and_the_dashboard_is_exported(live_metrics: str) -> None:
    names = exported(live_metrics)
    from_rules = set().union(*(metric_names(rule["expr"]) for rule in rules()))
    from_dashboard = set().union(*(metric_names(expr) for expr in dashboard_exprs()))
    assert "supervisor_target_status" in from_rules and "supervisor_breaker_open" in from_dashboard
    missing_rules = from_rules - names - recorded() - SYNTHETIC
    missing_dashboard = from_dashboard - names - SYNTHETIC
    assert not missing_rules, f"rules.yml reads names /metrics does not have: {missing_rules}"
    assert not missing_dashboard, f"the dashboard reads names /metrics lacks: {missing_dashboard}"


# --- a real Prometheus server ---------------------------------------------------------------


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path / "prometheus")
    server.start(tool("prometheus"))
    try:
        yield server
    finally:
        server.stop()


# A budget the test process (the daemon runs in it) cannot exceed: no budget alert joins in.
BIG_BUDGET = "[budget]\ncpu_percent = 400\nmemory_mb = 100000\nmemory_hard_mb = 100000\n"


async def scraped(prometheus: Prometheus, run: Running) -> None:
    """The daemon found through file-based discovery and scraped, the trader passing."""
    await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass")
    prometheus.discover(run.inside.port, host="sandbox")
    passing = 'supervisor_target_status{job="%s",host="sandbox",target="trader",status="pass"}'
    await until(
        lambda: prometheus.query(passing % JOB),
        30,
        "the trader scraped as passing",
        ok=lambda r: r and r[0]["value"][1] == "1",
        step=0.2,
        in_thread=True,
    )


def firing(alerts: list[dict[str, Any]]) -> bool:
    return bool(alerts) and alerts[0]["state"] == "firing"


async def test_real_prometheus_fires_and_resolves_target_failing(
    sandbox: Sandbox, prometheus: Prometheus
) -> None:
    await until(prometheus.ready, 30, "prometheus ready", step=0.2, in_thread=True)
    cfg = config(sandbox, fleet_toml(sandbox), budget=BIG_BUDGET)  # recovery off
    async with running(sandbox, cfg) as run:
        await scraped(prometheus, run)
        failing = {"target": "trader", "host": "sandbox"}
        assert prometheus.alerts("SupervisorTargetFailing", **failing) == []

        os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
        (alert,) = await until(
            lambda: prometheus.alerts("SupervisorTargetFailing", **failing),
            30,
            "SupervisorTargetFailing firing for the trader",
            ok=firing,
            step=0.2,
            in_thread=True,
        )
        assert alert["labels"]["severity"] == "warning"
        assert alert["labels"]["notified_by"] == "supervisor"
        assert alert["labels"]["instance"] == f"127.0.0.1:{run.inside.port}"
        assert "trader on sandbox has been failing" in alert["annotations"]["summary"]
        critical = await until(
            lambda: prometheus.alerts("SupervisorCriticalTargetFailing", **failing),
            30,
            "SupervisorCriticalTargetFailing firing for the trader",
            ok=firing,
            step=0.2,
            in_thread=True,
        )
        assert critical[0]["labels"]["severity"] == "critical"

        # Every dashboard query runs on this Prometheus (Grafana's variables filled in).
        for expr in dashboard_exprs():
            await asyncio.to_thread(prometheus.query, grafana_to_promql(expr, host="sandbox"))
        status = grafana_to_promql(
            next(e for e in dashboard_exprs() if e.startswith("max by (host, target)")), "sandbox"
        )
        by_target = {
            r["metric"]["target"]: r["value"][1]
            for r in await asyncio.to_thread(prometheus.query, status)
        }
        assert by_target == {"trader": "2", "dashboard": "0", "position-monitor": "0"}

        await asyncio.to_thread(sandbox.restore_fleet)
        await until(
            lambda: (
                prometheus.alerts("SupervisorTargetFailing", **failing)
                + prometheus.alerts("SupervisorCriticalTargetFailing", **failing)
            ),
            30,
            "the trader's alerts resolved",
            ok=lambda alerts: alerts == [],
            step=0.2,
            in_thread=True,
        )
        groups = await asyncio.to_thread(prometheus.api, "rules")
        for group in groups["groups"]:
            for rule in group["rules"]:
                assert rule["health"] == "ok", rule

    # The daemon is gone: only the central side can say so.
    down = await until(
        lambda: prometheus.alerts("SupervisorDown", host="sandbox"),
        30,
        "SupervisorDown firing",
        ok=firing,
        step=0.2,
        in_thread=True,
    )
    assert down[0]["labels"]["notified_by"] == "alertmanager"


async def test_alertmanager_sends_only_what_the_box_cannot_say(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with FakeBotApi() as bot:
        alertmanager = Alertmanager(tmp_path / "alertmanager", bot.url, bot.token)
        prometheus = Prometheus(tmp_path / "prometheus", alertmanager=alertmanager.address)
        alertmanager.start(tool("prometheus-alertmanager"))
        prometheus.start(tool("prometheus"))
        try:
            await until(alertmanager.ready, 30, "alertmanager ready", step=0.2, in_thread=True)
            await until(prometheus.ready, 30, "prometheus ready", step=0.2, in_thread=True)
            cfg = config(sandbox, fleet_toml(sandbox), budget=BIG_BUDGET)
            async with running(sandbox, cfg) as run:
                await scraped(prometheus, run)
                os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
                # The box tells of its own incident: Alertmanager holds it and sends nothing.
                (held,) = await until(
                    lambda: alertmanager.alerts("SupervisorCriticalTargetFailing"),
                    30,
                    "SupervisorCriticalTargetFailing in Alertmanager",
                    ok=lambda alerts: bool(alerts) and alerts[0]["status"]["state"] == "active",
                    step=0.2,
                    in_thread=True,
                )
                assert held["receivers"] == [{"name": "box-sends-it"}]
                assert held["labels"]["host"] == "sandbox"
            # The box is gone: Alertmanager says so, on Telegram, in the shipped template.
            await until(
                lambda: [m for m in bot.sent if "cannot be scraped" in m["text"]],
                30,
                "SupervisorDown on Telegram",
                step=0.2,
                in_thread=True,
            )
        finally:
            prometheus.stop()
            alertmanager.stop()
    (down,) = [m for m in bot.sent if "cannot be scraped" in m["text"]]
    assert down["parse_mode"] == "HTML"
    assert down["text"].startswith("🔴 <b>sandbox</b>: 1 firing")
    assert "critical: sandbox: the supervisor cannot be scraped" in down["text"]
    assert not [m for m in bot.sent if "trader" in m["text"]], bot.sent
