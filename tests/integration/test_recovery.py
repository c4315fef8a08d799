"""Recovery end to end against the real sandbox: outcomes, not just that code ran."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.sandbox import Sandbox
from supervisor.model import Status
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
from tests.polling import until

pytestmark = pytest.mark.sandbox
FAST = "backoff_s = [0, 0.5, 0.5]\nwindow_s = 120\nmax_attempts = 3\nretry_after_give_up_s = 3600"


def actions(run: Running, target: str, action: str, result: str | None = None) -> float:
    """How many recovery actions the daemon counted (its own metrics registry)."""
    total = 0.0
    for metric in run.inside.metrics():
        for sample in metric.samples:
            labels = sample.labels
            if (
                sample.name == "supervisor_recovery_actions_total"
                and labels.get("target") == target
                and labels.get("action") == action
                and (result is None or labels.get("result") == result)
            ):
                total += sample.value
    return total


def serving_new_pid(sandbox: Sandbox, old_pid: int) -> bool:
    health = sandbox.dashboard_health(timeout=0.5)
    return health is not None and health.get("pid") not in (None, old_pid)


async def test_hung_dashboard_is_restarted_and_serves_again(sandbox: Sandbox) -> None:
    body = f"ports = [{sandbox.dashboard_port}]\n" + http_probe(sandbox)
    cfg = config(
        sandbox, target_toml("dashboard", "dashboard.service", body, recovery="enabled = true")
    )
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        pid = sandbox.main_pid("dashboard.service")
        stopped = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        await until(lambda: serving_new_pid(sandbox, pid), 40, "a new dashboard serving", step=0.05)
        print(f"\nkill -STOP -> serving again (defaults): {time.monotonic() - stopped:.2f} s")
        assert sandbox.main_pid("dashboard.service") != pid
        assert actions(run, "dashboard", "restart", "done") == 1


async def test_dead_trader_is_restarted_at_once(sandbox: Sandbox) -> None:
    body = "critical = true\n" + heartbeat_probe(sandbox, "trader")
    cfg = config(sandbox, target_toml("trader", "trader.service", body, recovery=FAST))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        pid = sandbox.main_pid("trader.service")
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await until(
            lambda: sandbox.main_pid("trader.service") not in (0, pid),
            10,
            "a new trader process",
            step=0.005,
        )
        print(f"\nkill -9 -> new trader MainPID: {(time.monotonic() - killed) * 1000:.0f} ms")
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass again")
        assert actions(run, "trader", "restart", "done") == 1


@pytest.fixture
def orphan_of(sandbox: Sandbox) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


async def hold_port(port: int) -> subprocess.Popen[bytes]:
    """A stray process outside any unit holding `port`; returns once it listens."""
    cmd = [sys.executable, "-m", "devtools.demo", "orphan", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    await until(lambda: _listening(port) or proc.poll() is not None, 10, "the orphan listening")
    assert proc.poll() is None, "the orphan exited"
    return proc


def _listening(port: int) -> bool:
    from supervisor.recovery import ports

    return bool(ports.listening_inodes(port))


async def test_orphan_on_the_port_is_killed_and_only_it(
    sandbox: Sandbox, orphan_of: list[subprocess.Popen[bytes]]
) -> None:
    port = sandbox.dashboard_port
    body = f"ports = [{port}]\n" + http_probe(sandbox, period_s=1, timeout_s=1)
    rec = FAST + '\nactions = ["restart", "free-port"]'
    cfg = config(sandbox, target_toml("dashboard", "dashboard.service", body, recovery=rec))
    trader_pid = sandbox.main_pid("trader.service")
    # The fault is in place before the supervisor starts, so it cannot restart the
    # dashboard before the stray binds: the stray holds the port and the unit is down.
    sandbox.systemctl("stop", "dashboard.service")
    stray = await hold_port(port)
    orphan_of.append(stray)
    async with running(sandbox, cfg) as run:
        await until(lambda: stray.poll() is not None, 30, "the stray to be killed")
        await until(lambda: serving_new_pid(sandbox, 0), 30, "the dashboard serving again")
        assert stray.returncode == -signal.SIGTERM
        assert sandbox.main_pid("trader.service") == trader_pid  # nothing else touched
        assert actions(run, "dashboard", "free-port", "killed") == 1


async def test_forbidden_orphan_is_not_killed_and_target_says_why(
    sandbox: Sandbox, orphan_of: list[subprocess.Popen[bytes]], fake: FakeBotApi
) -> None:
    port = sandbox.dashboard_port
    sandbox.install_unit(
        "squatter.service",
        f"[Service]\nExecStart={sys.executable} -m devtools.demo orphan "
        f"--port {port}\nEnvironment=PYTHONPATH={os.getcwd()}\n",
    )
    body = f"ports = [{port}]\n" + http_probe(sandbox, period_s=1, timeout_s=1)
    rec = FAST + '\nactions = ["restart", "free-port"]'
    targets = target_toml("dashboard", "dashboard.service", body, recovery=rec) + target_toml(
        "squatter", "squatter.service"
    )
    try:
        # In place before the supervisor starts (it would restart the dashboard first).
        sandbox.systemctl("stop", "dashboard.service")
        sandbox.systemctl("start", "squatter.service")
        squatter = sandbox.main_pid("squatter.service")
        await until(lambda: _listening(port), 10, "the squatter listening")
        async with running(sandbox, config(sandbox, targets, extra=alerts_toml(fake))) as run:
            await until(
                lambda: "recovery blocked" in run.target("dashboard").output,
                20,
                "the dashboard to report the blocked recovery",
            )
            output = run.target("dashboard").output
            assert "belongs to squatter.service, another watched unit" in output
            assert run.status("dashboard") is Status.FAIL
            # Every attempt is blocked, so recovery gives up and the alert escalates.
            await until(lambda: critical(fake), 30, "a critical alert")
            [alert] = critical(fake)
            assert "recovery: gave up until" in alert
            assert "belongs to squatter.service" in alert
            assert actions(run, "dashboard", "restart", "blocked") == 3  # max_attempts
            assert actions(run, "dashboard", "restart", "done") == 0
            assert sandbox.main_pid("squatter.service") == squatter  # never killed
            assert actions(run, "dashboard", "free-port", "killed") == 0
    finally:
        sandbox.systemctl("stop", "squatter.service", check=False)


def critical(fake: FakeBotApi) -> list[str]:
    return [t for t in texts(fake) if "CRITICAL</b> dashboard" in t]


def _hh_mm_in(seconds: float) -> set[str]:
    """The local HH:MM `seconds` from now, give or take a minute (the clock may tick over)."""
    now = time.time() + seconds
    return {time.strftime("%H:%M", time.localtime(now + d)) for d in (-60, 0, 60)}


async def test_crash_loop_gives_up_after_max_attempts(sandbox: Sandbox, fake: FakeBotApi) -> None:
    body = f"ports = [{sandbox.dashboard_port}]\n" + http_probe(sandbox)
    cfg = config(
        sandbox,
        target_toml("dashboard", "dashboard.service", body, recovery=FAST),
        extra=alerts_toml(fake),
    )
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        sandbox.fault("dashboard", "crash-on-start")
        sandbox.fault("dashboard", "crash")
        await until(
            lambda: run.target("dashboard").recovery.startswith("gave up until"), 30, "give-up"
        )
        assert actions(run, "dashboard", "restart") == 3
        assert actions(run, "dashboard", "give-up", "gave-up") == 1
        # Loudly: a critical alert saying recovery gave up, sent at once.
        await until(lambda: critical(fake), 15, "a critical alert")
        [alert] = critical(fake)
        assert "recovery: gave up until" in alert
        # The slow retry: one hour after the give-up (retry_after_give_up_s = 3600).
        # "gave up until 14:05" (flapping notes may follow it)
        until_hh_mm = run.target("dashboard").recovery.removeprefix("gave up until ")[:5]
        assert until_hh_mm in _hh_mm_in(3600)
        await passes(run, 5)
        assert actions(run, "dashboard", "restart") == 3  # no more within the window
        _code, doc = await run.get("/health/dashboard")
        assert doc["checks"]["dashboard"][0]["recovery"].startswith("gave up until")
        assert doc["status"] == "fail"
        assert critical(fake) == [alert]  # once
        # One incident all along: no restart that crashed again looked like a repair.
        assert not [t for t in texts(fake) if "RESOLVED" in t], texts(fake)


async def test_systemd_restarting_is_not_fought(sandbox: Sandbox) -> None:
    text = sandbox.unit_text("trader").replace("Restart=no", "Restart=on-failure\nRestartSec=1")
    sandbox.install_unit("trader.service", text)
    sandbox.systemctl("restart", "trader.service")
    body = heartbeat_probe(sandbox, "trader")
    cfg = config(sandbox, target_toml("trader", "trader.service", body, recovery=FAST))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass")
        before = int(sandbox.show("trader.service", "NRestarts")["NRestarts"])
        pid = sandbox.main_pid("trader.service")
        sandbox.fault("trader", "crash")
        await until(
            lambda: int(sandbox.show("trader.service", "NRestarts")["NRestarts"]) == before + 1,
            15,
            "systemd's own restart",
        )
        await until(
            lambda: (
                run.status("trader") is Status.PASS and sandbox.main_pid("trader.service") != pid
            ),
            15,
            "trader back",
        )
        await passes(run, 3)
        assert actions(run, "trader", "restart") == 0


async def test_dry_run_acts_on_nothing_and_says_what_it_would_do(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config(
        sandbox, target_toml("trader", "trader.service", recovery=FAST), extra="dry_run = true"
    )
    caplog.set_level(logging.WARNING, logger="supervisor")
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
        await until(lambda: "dry run: would restart trader" in caplog.text, 10, "dry-run log")
        await passes(run, 3)
        assert sandbox.show("trader.service", "ActiveState")["ActiveState"] in (
            "failed",
            "inactive",
        )
        assert actions(run, "trader", "restart", "done") == 0
