"""The supervisor is not fooled, blinded or silenced by its own failure modes (issue 11).

Each test reproduces the fault for real against the sandbox and fails on the code before
the fix: a re-exec of the user manager, a reload during an incident, a full disk under
state_dir, a second instance, a wrongly shaped state file.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.sandbox import Sandbox
from supervisor.model import Status, UnitState
from tests.integration.bot import alerts_toml, texts
from tests.integration.harness import (
    TEST_BREAKER,
    Running,
    config,
    cpu_hogs,
    heartbeat_probe,
    http_probe,
    passes,
    running,
    target_toml,
)
from tests.integration.test_recovery import FAST, actions
from tests.polling import until

pytestmark = pytest.mark.sandbox


async def test_daemon_reexec_does_not_blind_the_supervisor(sandbox: Sandbox) -> None:
    body = "critical = true\n" + heartbeat_probe(sandbox, "trader")
    cfg = config(sandbox, target_toml("trader", "trader.service", body, recovery=FAST))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        before = run.inside.bus_owner
        sandbox.systemctl("daemon-reexec")
        await until(lambda: run.inside.bus_owner != before, 10, "systemd's new bus name")
        assert sandbox.bus_answers()
        pid = sandbox.main_pid("trader.service")
        os.kill(pid, signal.SIGKILL)
        # Seen from the new owner's signal, and restarted through a job whose JobRemoved
        # also comes from the new owner.
        await until(lambda: actions(run, "trader", "restart", "done") == 1, 10, "restart done")
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass again")
        assert sandbox.main_pid("trader.service") != pid


async def test_reload_during_an_incident_keeps_what_it_knew(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    probe = http_probe(sandbox, period_s=1, timeout_s=0.5, failure_threshold=2)
    alerts = alerts_toml(fake, failure_threshold=2)
    dash = target_toml("dashboard", "dashboard.service", probe)
    await fake.down()  # the alert waits in the outbox: a fleet note ("cannot reach Telegram")
    cfg = config(sandbox, dash, extra=alerts, breaker=TEST_BREAKER)
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        sandbox.fault("dashboard", "hang")
        await until(lambda: run.status("dashboard") is Status.FAIL, 15, "dashboard fail")
        await until(
            lambda: dashboard_incidents(run.inside.incidents), 10, "the dashboard's incident"
        )
        opened = dashboard_incidents(run.inside.incidents)
        with cpu_hogs():
            await until(lambda: run.inside.breaker_open, 20, "the breaker to open")
            await until(lambda: len(run.daemon.snapshot().notes) >= 2, 10, "two fleet notes")
            await passes(run, 2)
            before = run.daemon.snapshot()
            runs = probe_runs(run, "dashboard", "http")
            # An unrelated change: a new target. The hung dashboard's probe is unchanged.
            more = dash + heartbeat_target(sandbox)
            await run.reload(config(sandbox, more, extra=alerts, breaker=TEST_BREAKER))
            after = run.daemon.snapshot()
            # The same target: status, why, since, probe counts and results (probes are
            # paused while the breaker is open, so none may move), recovery, unit state
            # (less the memory figure, polled all along); its failed rounds keep counting.
            was, now = before.target("dashboard"), after.target("dashboard")
            assert was is not None and now is not None
            assert replace(now, consecutive_failures=0, unit_state=_steady(now.unit_state)) == (
                replace(was, consecutive_failures=0, unit_state=_steady(was.unit_state))
            )
            assert now.consecutive_failures >= was.consecutive_failures
            assert probe_runs(run, "dashboard", "http") == runs
            assert run.inside.breaker_open  # the open breaker carried over
            assert set(after.notes) == set(before.notes)  # breaker and alerts notes
            assert any(n.startswith("breaker open") for n in after.notes)
            assert any("Telegram" in n for n in after.notes)
        await passes(run, 5)
        assert run.status("dashboard") is Status.FAIL
        # The same incident is still open: no false "resolved", no second incident.
        assert dashboard_incidents(run.inside.incidents) == opened
        await fake.up()
        await until(lambda: about_dashboard(fake), 20, "the dashboard's alert delivered")
        await passes(run, 3)
        [alert] = about_dashboard(fake)  # the breaker's own alerts are not about it
        assert "WARNING</b> dashboard" in alert


def dashboard_incidents(incidents: Mapping[str, Any]) -> dict[str, float]:
    """The dashboard's open incidents (the breaker opening is an incident of its own)."""
    return {k: i.opened_at for k, i in incidents.items() if k.startswith("dashboard")}


def about_dashboard(fake: FakeBotApi) -> list[str]:
    return [t for t in texts(fake) if "</b> dashboard" in t]


def _steady(unit: UnitState | None) -> UnitState | None:
    """A unit's state less the figures polled all the time (memory, CPU)."""
    return None if unit is None else replace(unit, memory_bytes=None, cpu_nsec=None)


def probe_runs(run: Running, target: str, kind: str) -> float:
    """supervisor_probe_runs_total for one target's probe type."""
    value = run.inside.sample("supervisor_probe_runs_total", {"target": target, "type": kind})
    return float(value or 0)


def heartbeat_target(sandbox: Sandbox) -> str:
    return target_toml("trader", "trader.service", heartbeat_probe(sandbox, "trader"))


async def test_the_state_file_is_not_rewritten_when_nothing_changed(sandbox: Sandbox) -> None:
    body = heartbeat_probe(sandbox, "trader")
    cfg = config(sandbox, target_toml("trader", "trader.service", body, recovery=FAST))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
        await until(lambda: actions(run, "trader", "restart", "done") == 1, 10, "restart done")
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass again")

        def attempts_saved() -> int:
            saved = json.loads(run.inside.state_file.read_text())
            return len(saved["recovery"]["trader"]["attempts"])

        # What changed is saved (by the writer, off the loop)...
        await until(lambda: attempts_saved() == 1, 10, "the attempt in the state file")
        await passes(run, 3)
        written = run.inside.state_writes
        await passes(run, 20)
        # A recovery attempt is on record; its times must not look new at every pass.
        assert run.inside.state_writes == written
