"""Probes against the real sandbox: what systemd alone cannot see."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from collections.abc import AsyncIterator, Callable

import pytest

from devtools.sandbox import Sandbox
from supervisor.model import ActiveState, Status
from tests.integration.harness import (
    Running,
    config,
    heartbeat_probe,
    http_probe,
    running,
    target_toml,
)
from tests.polling import until

pytestmark = pytest.mark.sandbox


def unit_state(sandbox: Sandbox, unit: str) -> tuple[str, str]:
    props = sandbox.show(unit, "ActiveState", "SubState")
    return props["ActiveState"], props["SubState"]


def next_probe_in(run: Running, target: str) -> float:
    """Seconds until the target's first probe is due (from the daemon's schedule)."""
    for probe in run.daemon.fleet.runs:
        if probe.target.name == target:
            return float(probe.schedule.next_at - run.inside.clock.monotonic())
    raise AssertionError(f"no probe for {target}")


def due_within(run: Running, seconds: float) -> Callable[[], bool]:
    return lambda: 0 < next_probe_in(run, "dashboard") <= seconds


async def test_sigstop_dashboard_fails_through_http_probe_with_defaults(sandbox: Sandbox) -> None:
    """Default timing (period 5, timeout 2, threshold 3, confirm 0.5).

    A real hang falls at a random point of the probe period, so the stop is placed at three
    phases (next probe due in 4, 2.5 and 1 s): their median is the median-phase case.
    """
    cfg = config(sandbox, target_toml("dashboard", "dashboard.service", http_probe(sandbox)))
    times = []
    async with running(sandbox, cfg) as run:
        for due_in in (4.0, 2.5, 1.0):
            await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
            await until(due_within(run, due_in), 10, f"the next probe due in {due_in} s", step=0.01)
            pid = sandbox.main_pid("dashboard.service")
            stopped = time.monotonic()
            os.kill(pid, signal.SIGSTOP)
            try:
                await until(
                    lambda: run.status("dashboard") is Status.FAIL, 20, "dashboard fail", step=0.01
                )
                times.append(time.monotonic() - stopped)
                target = run.target("dashboard")
                # Proved stopped by /proc (probing/stuck.py): one probe, not three timeouts.
                assert target.output.startswith("http: no answer after "), target.output
                assert f"stuck: pid {pid} stopped (state T)" in target.output
                # systemd still believes all is well: only the probe can tell.
                assert unit_state(sandbox, "dashboard.service") == ("active", "running")
                assert target.unit_state.active_state is ActiveState.ACTIVE
            finally:
                os.kill(pid, signal.SIGCONT)
            await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
    print(
        f"\nkill -STOP -> fail (defaults), s: {[round(t, 2) for t in times]}, "
        f"median {statistics.median(times):.2f} s (worst case: a period + overdue + 0.5 s)"
    )


async def test_stale_heartbeat_fails_with_its_age_and_recovers(sandbox: Sandbox) -> None:
    body = heartbeat_probe(sandbox, "trader", max_age_s=2) + "period_s = 1\n"
    cfg = config(sandbox, target_toml("trader", "trader.service", "critical = true\n" + body))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        pid = sandbox.main_pid("trader.service")
        sandbox.fault("trader", "stall-heartbeat")
        await until(lambda: run.status("trader") is Status.FAIL, 15, "trader fail")
        output = run.target("trader").output
        assert output.startswith("heartbeat: ")
        assert output.endswith("s old (max 2 s)")
        assert sandbox.main_pid("trader.service") == pid  # alive all along
        code, doc = await run.get("/health/trader")
        probe = doc["checks"]["trader"][0]["probes"][0]
        assert (code, probe["observedUnit"], probe["status"]) == (503, "s", "fail")
        assert probe["observedValue"] > 2
        sandbox.fault("trader", "resume-heartbeat")
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass again")


async def test_memory_over_limit_fails_with_figure_and_recovers(sandbox: Sandbox) -> None:
    current_mb = int(sandbox.show("position-monitor.service", "MemoryCurrent")["MemoryCurrent"])
    limit = current_mb // (1024 * 1024) + 40  # one 64 MiB growth step crosses it
    body = (
        f'[[targets.probes]]\ntype = "resources"\nmemory_max_mb = {limit}\n'
        "period_s = 1\nfailure_threshold = 2\n"
    )
    cfg = config(sandbox, target_toml("position-monitor", "position-monitor.service", body))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("position-monitor") is Status.PASS, 10, "pass")
        sandbox.fault("position-monitor", "grow-memory")
        await until(lambda: run.status("position-monitor") is Status.FAIL, 15, "fail")
        output = run.target("position-monitor").output
        assert output.startswith("resources: ")
        assert output.endswith(f"MB > {limit} MB")
        _code, doc = await run.get("/health/position-monitor")
        probe = doc["checks"]["position-monitor"][0]["probes"][0]
        assert probe["observedUnit"] == "MB"
        assert probe["observedValue"] > limit
        assert probe["source"] == "memory cgroup, cpu proc"  # cgroup v1 here: CPU from /proc
        _, metrics = await run.get_text("/metrics")
        assert 'supervisor_unit_memory_bytes{target="position-monitor"}' in metrics
        sandbox.fault("position-monitor", "shrink-memory")
        await until(lambda: run.status("position-monitor") is Status.PASS, 15, "pass again")


@pytest.fixture
async def tarpit() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP server that accepts and never answers; yields its port and the open count."""
    open_now = [0]
    release = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_now[0] += 1
        try:
            await release.wait()
        finally:
            open_now[0] -= 1
            writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], open_now
    release.set()
    server.close()
    await server.wait_closed()


async def test_twenty_hanging_targets_do_not_delay_others(
    sandbox: Sandbox, tarpit: tuple[int, list[int]]
) -> None:
    port, open_now = tarpit
    for i in range(20):
        sandbox.install_unit(
            f"hang{i}.service", "[Service]\nExecStart=/bin/sleep infinity\n", reload=False
        )
    sandbox.daemon_reload()
    sandbox.systemctl("start", *[f"hang{i}.service" for i in range(20)])
    hanging = "".join(
        target_toml(
            f"hang{i}",
            f"hang{i}.service",
            f'[[targets.probes]]\ntype = "http"\nurl = "http://127.0.0.1:{port}/"\n'
            "period_s = 8\ntimeout_s = 8\n",
        )
        for i in range(20)
    )
    trader = target_toml(
        "trader", "trader.service", heartbeat_probe(sandbox, "trader") + "period_s = 1\n"
    )
    try:
        async with running(sandbox, config(sandbox, trader + hanging)) as run:
            await until(lambda: open_now[0] >= 15, 20, "15 probes hanging at once")
            started = time.monotonic()
            code, _doc = await run.get("/health")
            health_s = time.monotonic() - started
            assert code == 200
            first = trader_runs(run)
            await until(
                lambda: open_now[0] >= 15 and trader_runs(run) >= first + 3,
                6,
                "3 more trader probes while the others hang",
            )
            print(
                f"\n/health with {open_now[0]} probes hanging: {health_s * 1000:.1f} ms; "
                f"trader probed on schedule"
            )
            assert run.status("trader") is Status.PASS
            assert health_s < 4.0  # far inside the hanging probes' 8 s timeout
    finally:
        sandbox.systemctl("stop", *[f"hang{i}.service" for i in range(20)], check=False)


def trader_runs(run: Running) -> float:
    """How many heartbeat probes the trader has had (from the daemon's own registry)."""
    value = run.inside.sample(
        "supervisor_probe_runs_total", {"target": "trader", "type": "heartbeat"}
    )
    return float(value or 0)
