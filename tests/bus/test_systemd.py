"""The D-Bus front end (`supervisor.watch.systemd`) against a fake systemd on a private bus."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from supervisor.errors import BusError
from supervisor.model import ActiveState, UnitState
from supervisor.watch.systemd import Systemd
from tests.bus.conftest import FLEET, Heard
from tests.fakes.dbus_daemon import BusDaemon
from tests.fakes.systemd_bus import FakeSystemd
from tests.fakes.systemd_model import (
    ACCESS_DENIED,
    NO_SUCH_UNIT,
    SERVICE,
    UNIT,
    UNIT_MASKED,
    UNSET_U64,
    unit_path,
)

TRADER = "trader.service"


def is_(state: ActiveState) -> Callable[[UnitState], bool]:
    """A predicate for Heard.until: the unit is in this ActiveState."""
    return lambda s: s.active_state is state


async def test_connect_subscribes_then_reads_every_unit(
    watching: Systemd, systemd: FakeSystemd, heard: Heard
) -> None:
    members = [c.member for c in systemd.calls]
    assert members[0] == "Subscribe"
    assert [c.args[0] for c in systemd.calls_to("LoadUnit")] == list(FLEET)
    # Unit and Service, on each unit's own object.
    assert {(c.path, c.args[0]) for c in systemd.calls_to("GetAll")} == {
        (unit_path(u), i) for u in FLEET for i in (UNIT, SERVICE)
    }
    assert systemd.subscribers == {c.sender for c in systemd.calls}
    trader = systemd.unit(TRADER)
    state = watching.state(TRADER)
    assert state is not None
    assert (state.active_state, state.sub_state, state.load_state) == (
        ActiveState.ACTIVE,
        "running",
        "loaded",
    )
    assert state.main_pid == trader["MainPID"] > 0
    assert state.state_change_usec == trader["StateChangeTimestamp"]
    assert (state.memory_bytes, state.cpu_nsec) == (None, None)  # systemd's "unset"
    assert [s.unit for s in heard.states] == list(FLEET)
    assert [s.unit for s in watching.known_states()] == list(FLEET)
    assert watching.connected


async def test_properties_changed_is_applied_as_it_arrives(
    watching: Systemd, systemd: FakeSystemd, heard: Heard
) -> None:
    calls = len(systemd.calls)
    systemd.set_unit(
        TRADER, ActiveState="failed", SubState="failed", Result="signal", MainPID=0, NRestarts=2
    )
    state = await heard.until(TRADER, is_(ActiveState.FAILED))
    assert (state.sub_state, state.result, state.main_pid, state.n_restarts) == (
        "failed",
        "signal",
        0,
        2,
    )
    assert watching.state(TRADER) == state
    assert len(systemd.calls) == calls  # from the signals alone, nothing read again
    assert all(s.unit == TRADER for s in heard.states[len(FLEET) :])


async def test_an_invalidated_property_is_read_again(
    watching: Systemd, systemd: FakeSystemd, heard: Heard
) -> None:
    systemd.unit(TRADER).invalidated = {"MainPID"}
    reads = len(systemd.calls_to("GetAll"))
    systemd.set_unit(TRADER, MainPID=777)
    state = await heard.until(TRADER, lambda s: s.main_pid == 777)
    assert state.active_state is ActiveState.ACTIVE
    assert len(systemd.calls_to("GetAll")) == reads + 2  # Unit and Service


async def test_signals_from_another_connection_are_ignored(
    bus: BusDaemon, watching: Systemd, systemd: FakeSystemd, heard: Heard
) -> None:
    # Anyone on the bus may send a PropertiesChanged for systemd's paths; only systemd counts.
    impostor = FakeSystemd(bus.address)
    impostor.add_unit(TRADER)
    await impostor.start(take_name=False)
    try:
        impostor.emit_properties_changed(TRADER, UNIT, {"ActiveState": "failed"})
        systemd.set_unit(TRADER, MainPID=4242)  # a real signal, right behind it
        await heard.until(TRADER, lambda s: s.main_pid == 4242)
        assert all(s.active_state is ActiveState.ACTIVE for s in heard.of(TRADER))
    finally:
        await impostor.close()


async def test_a_unit_without_a_file_is_a_state_not_an_error(
    bus: BusDaemon, systemd: FakeSystemd, heard: Heard
) -> None:
    front = Systemd(bus.address, [*FLEET, "ghost.service"], call_timeout_s=2.0)
    await front.connect(heard)
    try:
        ghost = front.state("ghost.service")
        assert ghost is not None
        assert ghost.load_state == "not-found"
        assert not ghost.found
        assert ghost.active_state is ActiveState.INACTIVE
        # Service properties of a unit that is not loaded mean nothing: not read.
        reads = [
            c.args[0] for c in systemd.calls_to("GetAll") if c.path == unit_path("ghost.service")
        ]
        assert reads == [UNIT]
        with pytest.raises(BusError, match=f"{NO_SUCH_UNIT}: Unit ghost.service not found"):
            await front.restart("ghost.service", 2)
    finally:
        front.close()


@pytest.mark.parametrize(
    "case",
    [
        ("done", ActiveState.ACTIVE, "success"),
        ("failed", ActiveState.FAILED, "exit-code"),
        ("timeout", ActiveState.FAILED, "timeout"),
    ],
    ids=lambda case: str(case[0]),
)
async def test_restart_waits_for_its_job_and_returns_its_result(
    watching: Systemd,
    systemd: FakeSystemd,
    heard: Heard,
    case: tuple[str, ActiveState, str],
) -> None:
    result, final, why = case
    systemd.unit(TRADER).job_result = result
    old_pid = systemd.unit(TRADER)["MainPID"]
    assert await watching.restart(TRADER, 2) == result
    call = systemd.calls_to("RestartUnit")[0]
    assert call.args == (TRADER, "replace")
    # JobRemoved comes after the unit's last change, so the state is already final.
    state = watching.state(TRADER)
    assert state is not None
    assert (state.active_state, state.result) == (final, why)
    seen = [s.active_state for s in heard.of(TRADER)]
    assert seen.index(ActiveState.DEACTIVATING) < seen.index(ActiveState.ACTIVATING)
    if result == "done":
        assert state.main_pid not in (0, old_pid)
    else:
        assert state.main_pid == 0


async def test_reset_and_start_clears_the_failure_first(
    watching: Systemd, systemd: FakeSystemd, heard: Heard
) -> None:
    systemd.set_unit(TRADER, ActiveState="failed", SubState="failed", Result="start-limit-hit")
    await heard.until(TRADER, is_(ActiveState.FAILED))
    assert await watching.reset_and_start(TRADER, 2) == "done"
    assert [c.member for c in systemd.calls[-2:]] == ["ResetFailedUnit", "StartUnit"]
    state = await heard.until(TRADER, is_(ActiveState.ACTIVE))
    assert state.result == "success"


async def test_a_job_that_ends_before_its_reply_is_not_lost(
    watching: Systemd, systemd: FakeSystemd
) -> None:
    systemd.jobs_finish_before_reply = True
    systemd.unit(TRADER).job_result = "failed"
    assert await watching.restart(TRADER, 2) == "failed"


async def test_a_job_that_outlasts_its_deadline_is_a_timeout(
    watching: Systemd, systemd: FakeSystemd, heard: Heard
) -> None:
    systemd.hold_jobs()
    assert await watching.restart(TRADER, 0.05) == "timeout"
    await heard.until(TRADER, is_(ActiveState.ACTIVATING))  # still under way, held
    systemd.release_jobs()
    job = await systemd.wait_job()
    assert job.result == "done"  # systemd finished it after all; nobody was waiting


async def test_other_jobs_ending_are_ignored(watching: Systemd, systemd: FakeSystemd) -> None:
    for n in range(300):  # others' JobRemoved pile up in a bounded map, never in ours
        systemd.emit_job_removed(10_000 + n, "other.service", "done")
        if n % 50 == 49:
            await systemd.flush()
    assert await watching.restart(TRADER, 2) == "done"


async def test_an_error_reply_becomes_a_bus_error(watching: Systemd, systemd: FakeSystemd) -> None:
    systemd.fail("RestartUnit", UNIT_MASKED, "Unit trader.service is masked.")
    with pytest.raises(BusError) as caught:
        await watching.restart(TRADER, 2)
    assert str(caught.value) == f"RestartUnit: {UNIT_MASKED}: Unit trader.service is masked."
    assert await watching.restart(TRADER, 2) == "done"  # one failure, then normal again


async def test_an_unanswered_call_times_out_as_a_bus_error(
    bus: BusDaemon, systemd: FakeSystemd, heard: Heard
) -> None:
    front = Systemd(bus.address, FLEET, call_timeout_s=0.1)
    await front.connect(heard)
    try:
        systemd.hang("Get")
        with pytest.raises(BusError, match=r"Get timed out after 0\.1 s"):
            await front.resources(TRADER)
        assert front.connected
    finally:
        front.close()


async def test_a_failed_read_at_connect_fails_the_connect_and_closes(
    bus: BusDaemon, systemd: FakeSystemd, heard: Heard
) -> None:
    systemd.fail("GetAll", ACCESS_DENIED, "no", times=None)
    front = Systemd(bus.address, FLEET, call_timeout_s=2.0)
    with pytest.raises(BusError, match=re.escape(f"GetAll: {ACCESS_DENIED}: no")):
        await front.connect(heard)
    assert not front.connected
    assert front.known_states() == []


async def test_connect_without_systemd_on_the_bus_is_a_bus_error(
    bus: BusDaemon, heard: Heard
) -> None:
    front = Systemd(bus.address, FLEET, call_timeout_s=2.0)
    with pytest.raises(BusError, match=r"NameHasNoOwner|ServiceUnknown"):
        await front.connect(heard)
    assert not front.connected


async def test_connect_to_no_bus_is_a_bus_error(bus: BusDaemon, heard: Heard) -> None:
    bus.stop()
    front = Systemd(bus.address, FLEET, call_timeout_s=2.0)
    with pytest.raises(BusError, match="cannot connect to"):
        await front.connect(heard)


async def test_resources_are_polled_and_unset_means_none(
    watching: Systemd, systemd: FakeSystemd
) -> None:
    calls = len(systemd.calls)
    systemd.set_unit(TRADER, MemoryCurrent=50 * 1024 * 1024, CPUUsageNSec=UNSET_U64)
    assert len(systemd.calls) == calls  # no signal for these: nothing was pushed
    res = await watching.resources(TRADER)
    assert res.memory_bytes == 50 * 1024 * 1024
    assert res.cpu_nsec is None
    assert res.control_group == "/user.slice/app.slice/trader.service"
    gets = [c.args for c in systemd.calls_to("Get")]
    assert gets == [(SERVICE, n) for n in ("MemoryCurrent", "CPUUsageNSec", "ControlGroup")]


async def test_a_daemon_reload_makes_it_read_everything_again(
    watching: Systemd, systemd: FakeSystemd, heard: Heard
) -> None:
    systemd.set_unit(TRADER, quiet=True, ActiveState="failed", SubState="failed")
    reads = len(systemd.calls_to("GetAll"))
    systemd.emit_reloading(True)  # reload under way: nothing to read yet
    systemd.emit_reloading(False)
    await heard.until(TRADER, is_(ActiveState.FAILED))
    await systemd.wait_call("GetAll", reads + 2 * len(FLEET))


async def test_watch_drops_old_units_and_reads_new_ones(
    watching: Systemd, systemd: FakeSystemd, heard: Heard
) -> None:
    systemd.add_unit("worker.service", active="inactive")
    watching.watch(["trader.service", "worker.service"])
    assert [s.unit for s in watching.known_states()] == ["trader.service"]
    await watching.refresh_all()
    worker = watching.state("worker.service")
    assert worker is not None and worker.active_state is ActiveState.INACTIVE
    systemd.set_unit("dashboard.service", ActiveState="failed")  # no longer watched
    systemd.set_unit("worker.service", ActiveState="active", SubState="running")
    await heard.until("worker.service", is_(ActiveState.ACTIVE))
    assert watching.state("dashboard.service") is None


async def test_losing_the_bus_is_noticed_and_fails_what_waits(
    bus: BusDaemon, watching: Systemd, systemd: FakeSystemd, heard: Heard
) -> None:
    systemd.hold_jobs()
    restart = asyncio.create_task(watching.restart(TRADER, 10))
    await heard.until(TRADER, is_(ActiveState.ACTIVATING))  # held before its last step
    bus.stop()
    async with asyncio.timeout(2):
        reason = await watching.wait_closed()
    assert reason.startswith("bus connection")
    assert not watching.connected
    watching.close()  # what the daemon's bus loop does next
    with pytest.raises(BusError, match="bus connection lost while waiting for the job"):
        await restart
    with pytest.raises(BusError, match="not connected"):
        await watching.refresh(TRADER)
    assert watching.known_states() == []


async def test_after_a_reexec_signals_from_the_new_manager_still_count(
    watching: Systemd, systemd: FakeSystemd, heard: Heard
) -> None:
    # Issue 11: systemd takes its name again under a new unique name; we follow it.
    before = systemd.unique_name
    after = await systemd.reexec()
    assert after != before
    systemd.set_unit(TRADER, ActiveState="failed", SubState="failed", Result="signal", MainPID=0)
    await heard.until(TRADER, is_(ActiveState.FAILED), timeout_s=5)
    assert await watching.restart(TRADER, 5) == "done"
