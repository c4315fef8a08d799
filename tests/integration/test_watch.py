"""Watching the real sandbox over D-Bus: event-driven state and /health."""

from __future__ import annotations

import os
import signal
import time

import pytest

from devtools.sandbox import Sandbox
from supervisor.model import Status
from tests.integration.harness import config, fleet_toml, running, target_toml
from tests.polling import until

pytestmark = pytest.mark.sandbox


async def test_demo_fleet_passes(sandbox: Sandbox) -> None:
    async with running(sandbox, config(sandbox, fleet_toml(sandbox))) as run:
        await until(lambda: run.daemon.snapshot().status is Status.PASS, 15, "overall pass")
        code, doc = await run.get("/health")
        assert code == 200
        assert doc["status"] == "pass"
        assert set(doc["checks"]) == {"trader", "dashboard", "position-monitor"}
        trader = doc["checks"]["trader"][0]
        assert (trader["activeState"], trader["subState"]) == ("active", "running")
        assert trader["mainPid"] == sandbox.main_pid("trader.service")


async def test_kill_9_is_seen_from_the_signal_at_once(sandbox: Sandbox) -> None:
    # The trader has no probe and the supervisor never polls unit state: `fail` can only
    # come from systemd's PropertiesChanged signal. How fast is measured by the benchmark.
    trader = target_toml("trader", "trader.service", "critical = true\n")
    async with running(sandbox, config(sandbox, trader)) as run:
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        pid = sandbox.main_pid("trader.service")
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await until(lambda: run.status("trader") is Status.FAIL, 5, "trader fail", step=0.0005)
        latency_ms = (time.monotonic() - killed_at) * 1000
        print(f"\nkill -9 -> snapshot shows trader fail: {latency_ms:.1f} ms")
        assert run.daemon.snapshot().status is Status.FAIL  # trader is critical
        code, doc = await run.get("/health")
        assert (code, doc["status"]) == (503, "fail")
        entry = doc["checks"]["trader"][0]
        assert entry["status"] == "fail"
        assert entry["activeState"] in ("failed", "inactive")
        assert "signal" in entry["output"] or "failed" in entry["output"]
        code, _one = await run.get("/health/trader")
        assert code == 503


async def test_missing_unit_fails_and_daemon_keeps_serving(sandbox: Sandbox) -> None:
    targets = fleet_toml(sandbox) + target_toml("ghost", "no-such-unit.service")
    async with running(sandbox, config(sandbox, targets)) as run:
        await until(lambda: run.status("ghost") is Status.FAIL, 10, "ghost fail")
        code, doc = await run.get("/health/ghost")
        assert code == 503  # the target's own document: fail answers 503
        assert doc["status"] == "fail"
        assert "not found" in doc["checks"]["ghost"][0]["output"]
        code, whole = await run.get("/health")
        assert whole["checks"]["trader"][0]["status"] in ("pass", "warn")
        code, metrics = await run.get_text("/metrics")
        assert 'supervisor_target_status{status="fail",target="ghost"} 1.0' in metrics
