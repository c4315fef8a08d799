"""The recovery executor, wired as the daemon wires it, acting on a fake systemd over D-Bus."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from supervisor.api.metrics import Metrics
from supervisor.app.dispatch import Dispatcher
from supervisor.app.subscribers import to_alert_notes, to_metrics
from supervisor.config import Config, parse
from supervisor.model import SelfStats, Status, UnitState
from supervisor.recovery.executor import Repairer
from supervisor.watch.health import HealthModel, TargetSpec
from supervisor.watch.systemd import Systemd
from tests.clock import FakeClock
from tests.fakes.dbus_daemon import BusDaemon
from tests.fakes.systemd_bus import FakeSystemd
from tests.fakes.systemd_model import UNIT_MASKED

TRADER = "trader.service"


class Supervised:
    """The parts of a Fleet that recovery needs: model, metrics, repairer, and the bus front
    end feeding the model (what Daemon.unit_changed does)."""

    def __init__(self, config: Config, front: Systemd) -> None:
        clock = FakeClock()
        self.front = front
        self.model = HealthModel(
            [TargetSpec(t.name, t.unit, t.critical) for t in config.targets], clock
        )
        self.metrics = Metrics(self.model.snapshot, SelfStats, clock)
        self.actions: list[tuple[str, str]] = []
        self.woken = asyncio.Event()
        self._heard = asyncio.Event()
        # The daemon's own subscribers, on a dispatcher of this test's (as build wires them).
        events = Dispatcher()
        events.subscribe(to_metrics(self.metrics))
        events.subscribe(to_alert_notes(lambda target, words: self.actions.append((target, words))))
        self.repairer = Repairer(
            config,
            clock=clock,
            model=self.model,
            systemd=front,
            wake=self.woken.set,
            emit=events.emit,
        )

    def unit_changed(self, state: UnitState) -> None:
        name = self.model.name_for_unit(state.unit)
        if name is not None:
            self.model.apply_unit(name, state)
            self._heard.set()

    def bus_lost(self, reason: str) -> None:
        self.model.set_unknown(reason)

    async def until(self, pred: Callable[[], bool], timeout_s: float = 2.0) -> None:
        """Wait, on the unit changes the front end delivers, until `pred` holds."""
        async with asyncio.timeout(timeout_s):
            while not pred():
                self._heard.clear()
                await self._heard.wait()

    async def act(self, timeout_s: float = 2.0) -> None:
        """One supervision pass, then wait until the action it started has finished."""
        self.woken.clear()
        self.repairer.step()
        async with asyncio.timeout(timeout_s):
            await self.woken.wait()  # the executor wakes the loop when an action ends

    def counted(self, action: str, result: str) -> float:
        """supervisor_recovery_actions_total{target="trader",action,result}."""
        value = self.metrics.registry.get_sample_value(
            "supervisor_recovery_actions_total",
            {"target": "trader", "action": action, "result": result},
        )
        return value or 0.0


def trader_config(state_dir: Path, recovery: str = "") -> Config:
    text = (
        f'state_dir = "{state_dir}"\n[[targets]]\nname = "trader"\nunit = "{TRADER}"\n'
        f"[targets.recovery]\nbackoff_s = [0]\n{recovery}"
    )
    return parse(tomllib.loads(text), env={})


@pytest.fixture
async def supervised(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> AsyncIterator[Supervised]:
    config = trader_config(tmp_path)
    front = Systemd(bus.address, config.units(), call_timeout_s=2.0)
    parts = Supervised(config, front)
    await front.connect(parts)
    yield parts
    await parts.repairer.close()
    front.close()


async def fail_trader(systemd: FakeSystemd, parts: Supervised, result: str = "signal") -> None:
    """The trader dies; wait until the model, fed by systemd's signal, says it fails."""
    systemd.set_unit(TRADER, ActiveState="failed", SubState="failed", Result=result, MainPID=0)
    await parts.until(lambda: parts.model.target("trader").status is Status.FAIL)


async def test_a_failing_target_is_restarted_and_the_result_recorded(
    supervised: Supervised, systemd: FakeSystemd
) -> None:
    await fail_trader(systemd, supervised)
    old_calls = len(systemd.calls)
    await supervised.act()
    assert [(c.member, c.args) for c in systemd.calls[old_calls:]] == [
        ("RestartUnit", (TRADER, "replace"))
    ]
    assert supervised.counted("restart", "done") == 1
    assert supervised.actions == [("trader", "restarted")]
    await supervised.until(lambda: supervised.model.target("trader").status is Status.PASS)
    trader = supervised.model.target("trader")
    assert trader.unit_state is not None
    assert trader.unit_state.main_pid == systemd.unit(TRADER)["MainPID"] > 0
    assert trader.recovery == "attempt 1/3"


@pytest.mark.parametrize("result", ["failed", "timeout"])
async def test_a_restart_that_fails_is_recorded_as_such(
    supervised: Supervised, systemd: FakeSystemd, result: str
) -> None:
    systemd.unit(TRADER).job_result = result
    await fail_trader(systemd, supervised)
    await supervised.act()
    assert supervised.counted("restart", result) == 1
    assert supervised.actions == []  # only a restart that worked is announced
    assert supervised.model.target("trader").status is Status.FAIL


async def test_a_refused_restart_is_a_bus_error_not_a_crash(
    supervised: Supervised, systemd: FakeSystemd
) -> None:
    systemd.fail("RestartUnit", UNIT_MASKED, "Unit trader.service is masked.")
    await fail_trader(systemd, supervised)
    await supervised.act()
    assert supervised.counted("restart", "bus-error") == 1
    assert supervised.actions == []
    assert supervised.model.target("trader").recovery == "attempt 1/3"


async def test_after_the_start_limit_it_resets_then_starts(
    supervised: Supervised, systemd: FakeSystemd
) -> None:
    await fail_trader(systemd, supervised, result="start-limit-hit")
    old_calls = len(systemd.calls)
    await supervised.act()
    assert [(c.member, c.args) for c in systemd.calls[old_calls:]] == [
        ("ResetFailedUnit", (TRADER,)),
        ("StartUnit", (TRADER, "replace")),
    ]
    assert supervised.counted("reset-failed+start", "done") == 1


async def test_a_unit_systemd_is_restarting_is_left_alone(
    supervised: Supervised, systemd: FakeSystemd
) -> None:
    systemd.set_unit(TRADER, ActiveState="activating", SubState="auto-restart", MainPID=0)
    await supervised.until(lambda: supervised.model.target("trader").status is Status.FAIL)
    supervised.repairer.step()
    assert systemd.calls_to("RestartUnit") == []
    assert (
        supervised.model.target("trader").recovery == "waiting: systemd is restarting it (Restart=)"
    )


async def test_a_restart_on_request_says_how_it_went(
    supervised: Supervised, systemd: FakeSystemd
) -> None:
    assert await supervised.repairer.manual_restart("trader") == "restart trader: done"
    assert await supervised.repairer.manual_restart("trader") == (
        "trader was restarted 0 s ago; try again in a minute"
    )
    assert len(systemd.calls_to("RestartUnit")) == 1
    assert supervised.counted("manual-restart", "done") == 1
    assert supervised.actions == [("trader", "restarted on request")]
