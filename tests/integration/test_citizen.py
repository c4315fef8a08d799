"""The supervisor as a systemd citizen, installed by install_services.sh into the sandbox."""

from __future__ import annotations

import os
import signal

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.sandbox import Sandbox
from supervisor.model import Status
from tests.integration.bot import alerts_toml
from tests.integration.harness import (
    TEST_BREAKER,
    Running,
    config,
    cpu_hogs,
    heartbeat_probe,
    passes,
    running,
    target_toml,
)
from tests.integration.installed import UNIT, Installed, present
from tests.integration.test_recovery import FAST, actions
from tests.integration.test_trust import probe_runs
from tests.polling import until

pytestmark = pytest.mark.sandbox


def test_install_starts_a_notify_unit_that_answers(installed: Installed) -> None:
    props = installed.show("Type", "ActiveState", "SubState", "NotifyAccess", "WatchdogUSec")
    # Type=notify reaches active (running) only after READY=1 arrived.
    assert (props["Type"], props["ActiveState"], props["SubState"]) == (
        "notify",
        "active",
        "running",
    )
    assert props["WatchdogUSec"] == "30s"
    assert installed.config_after_install == installed.good_config()  # not overwritten
    text = installed.unit_file.read_text()
    assert f"ExecStart={installed.venv}/bin/supervisor run --config {installed.config}" in text
    assert installed.last_word_file.is_file()
    health = installed.health()
    assert health is not None
    assert health[0] in (200, 503)


def test_second_run_is_a_no_op_upgrade(installed: Installed) -> None:
    pid = installed.show("MainPID")["MainPID"]
    result = installed.run()
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout
    assert "nothing changed" in result.stdout
    assert installed.show("MainPID")["MainPID"] == pid


def test_dry_run_changes_nothing(installed: Installed) -> None:
    before = installed.unit_file.read_text()
    result = installed.run("--dry-run", "--uninstall")
    assert result.returncode == 0, result.stderr
    assert "would run: systemctl --user disable --now sidecar-supervisor.service" in result.stdout
    assert installed.unit_file.read_text() == before
    assert installed.show("ActiveState")["ActiveState"] == "active"


def _restarted(installed: Installed, restarts: int, pid: str) -> bool:
    props = installed.show("NRestarts", "MainPID", "ActiveState", "SubState")
    return (
        int(props["NRestarts"]) > restarts
        and props["MainPID"] not in ("0", pid)
        and (props["ActiveState"], props["SubState"]) == ("active", "running")
    )


async def test_watchdog_restarts_a_stopped_supervisor(installed: Installed) -> None:
    box = installed.sandbox
    dropin = box.config_home / "systemd" / "user" / f"{UNIT}.d" / "watchdog.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nWatchdogSec=2\n")
    try:
        box.daemon_reload()
        box.systemctl("restart", UNIT)
        props = installed.show("NRestarts", "MainPID")
        restarts, pid = int(props["NRestarts"]), props["MainPID"]
        os.kill(int(pid), signal.SIGSTOP)
        await until(
            lambda: _restarted(installed, restarts, pid),
            20,
            "systemd's watchdog to restart the supervisor",
            step=0.1,
        )
        await until(lambda: installed.health() is not None, 15, "/health answering again")
    finally:
        dropin.unlink()
        box.daemon_reload()
        # Stopped, not restarted (a start takes about 10 s under CPUQuota=10%): the tests
        # after this one start it as they need it, or need it stopped.
        box.systemctl("stop", UNIT, check=False)


async def test_broken_config_exits_78_and_is_not_restarted(installed: Installed) -> None:
    box = installed.sandbox
    restarts = int(installed.show("NRestarts")["NRestarts"])
    installed.config.write_text("[http]\nport = 'not a port'\n")
    try:
        box.systemctl("restart", UNIT, check=False)
        await until(
            lambda: installed.show("ActiveState")["ActiveState"] == "failed",
            20,
            "the unit to fail",
            step=0.05,
        )
        props = installed.show("ExecMainStatus", "NRestarts", "Result")
        assert props["ExecMainStatus"] == "78"
        assert props["Result"] == "exit-code"
        assert int(props["NRestarts"]) == restarts  # RestartPreventExitStatus=78
    finally:
        # Left stopped on its good config: no later test of this module needs it running.
        installed.config.write_text(installed.good_config())
        box.systemctl("reset-failed", UNIT, check=False)


@pytest.mark.uninstalls
def test_uninstall_removes_it_and_keeps_the_config(installation: Installed) -> None:
    # The installation as it is, running or not: `installed` would start it first (about
    # 10 s under CPUQuota=10%) only for it to be removed.
    installed = installation
    present(installed)
    config = installed.config.read_text()
    result = installed.run("--uninstall")
    assert result.returncode == 0, result.stderr
    assert "your config is kept" in result.stdout
    assert not installed.unit_file.exists()
    assert not installed.last_word_file.exists()
    assert not installed.venv.exists()
    assert installed.config.read_text() == config
    assert installed.sandbox.systemctl("cat", UNIT, check=False).returncode != 0


async def test_breaker_pauses_probes_under_load_and_sees_deaths(sandbox: Sandbox) -> None:
    # The budget stays out of reach (NO_BUDGET): the pytest process shares our PID here.
    body = heartbeat_probe(sandbox, "trader") + "period_s = 0.2\n"
    targets = target_toml(
        "trader", "trader.service", "critical = true\n" + body, recovery=FAST
    ) + target_toml("position-monitor", "position-monitor.service", recovery=FAST)
    async with running(sandbox, config(sandbox, targets, breaker=TEST_BREAKER)) as run:
        await until(lambda: probe_runs(run, "trader", "heartbeat") >= 3, 10, "probes running")
        with cpu_hogs():
            await until(lambda: run.inside.breaker_open, 20, "the breaker to trip")
            _code, doc = await run.get("/health")
            assert doc["status"] == "warn"
            assert "breaker open: host CPU" in doc["output"]
            frozen = probe_runs(run, "trader", "heartbeat")
            await _load_samples(run, 6)
            assert probe_runs(run, "trader", "heartbeat") == frozen  # probes paused
            victim = sandbox.main_pid("position-monitor.service")
            os.kill(victim, signal.SIGKILL)
            await until(
                lambda: run.status("position-monitor") is Status.FAIL,
                10,
                "a death seen from D-Bus while the breaker is open",
            )
            # ...and restarted while the breaker is still open (recovery does not pause).
            await until(
                lambda: actions(run, "position-monitor", "restart", "done") == 1,
                15,
                "the dead unit restarted under load",
            )
            assert sandbox.main_pid("position-monitor.service") not in (0, victim)
            assert run.inside.breaker_open
            assert probe_runs(run, "trader", "heartbeat") == frozen  # probes still paused
            assert actions(run, "trader", "restart") == 0  # a paused probe restarts nothing
        await until(lambda: not run.inside.breaker_open, 30, "the breaker to close")
        resumed = probe_runs(run, "trader", "heartbeat")
        await until(
            lambda: probe_runs(run, "trader", "heartbeat") > resumed + 2, 10, "probes resuming"
        )


async def _load_samples(run: Running, n: int) -> None:
    """Wait for `n` more load samples (the breaker's own clock), not for a fixed time."""
    start = run.inside.load_samples
    await until(lambda: run.inside.load_samples >= start + n, 10, f"{n} load samples")


async def test_bus_loss_reconnects_and_rereads_state(sandbox: Sandbox, fake: FakeBotApi) -> None:
    body = heartbeat_probe(sandbox, "trader")
    targets = target_toml("trader", "trader.service", body, recovery=FAST) + target_toml(
        "position-monitor", "position-monitor.service", recovery=FAST
    )
    cfg = config(sandbox, targets, extra=alerts_toml(fake, failure_threshold=1))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        pids = {u: sandbox.main_pid(u) for u in ("trader.service", "position-monitor.service")}
        bus_pid = int(sandbox.show("dbus.service", "MainPID")["MainPID"])
        os.kill(bus_pid, signal.SIGKILL)  # the session bus dies under us
        await until(lambda: run.status("trader") is Status.UNKNOWN, 10, "targets unknown")
        _code, doc = await run.get("/health")
        assert doc["checks"]["trader"][0]["state"] == "unknown"
        assert "D-Bus" in doc["output"]
        # The bus comes back (socket-activated) and the manager rejoins it; so must we.
        await until(
            lambda: run.inside.on_bus and run.status("trader") is Status.PASS,
            30,
            "reconnected with trader pass",
            step=0.05,
        )
        await passes(run, 3)
        # Our blindness was nobody's failure: no restart, no alert (failure_threshold = 1).
        assert {u: sandbox.main_pid(u) for u in pids} == pids
        assert actions(run, "trader", "restart") == actions(run, "position-monitor", "restart") == 0
        assert fake.sent == []
        os.kill(pids["position-monitor.service"], signal.SIGKILL)
        await until(
            lambda: run.status("position-monitor") is Status.FAIL,
            10,
            "signals flowing again after the reconnect",
        )
        await until(
            lambda: actions(run, "position-monitor", "restart", "done") == 1,
            15,
            "the dead unit restarted over the new connection",
        )
