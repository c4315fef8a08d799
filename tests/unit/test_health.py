"""The health model's transitions and aggregation, with an injected clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from supervisor.model import ActiveState, ProbeResult, Status, UnitState
from supervisor.watch.health import (
    HealthModel,
    Notes,
    ProbeTrack,
    TargetSpec,
    overall,
    unit_verdict,
)
from tests.clock import FakeClock


def running(unit: str, pid: int = 100, **kw: Any) -> UnitState:
    return UnitState(
        unit=unit, active_state=ActiveState.ACTIVE, sub_state="running", main_pid=pid, **kw
    )


def failed(unit: str, result: str = "signal") -> UnitState:
    return UnitState(unit=unit, active_state=ActiveState.FAILED, sub_state="failed", result=result)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def model(clock: FakeClock) -> HealthModel:
    return HealthModel(
        [
            TargetSpec("trader", "trader.service", critical=True),
            TargetSpec("dashboard", "dashboard.service"),
        ],
        clock,
    )


def probe(ok: bool | Status, output: str = "http: 200", target: str = "dashboard") -> ProbeResult:
    status = ok if isinstance(ok, Status) else (Status.PASS if ok else Status.FAIL)
    return ProbeResult(
        target=target, probe="http", kind="http", status=status, output=output, duration_s=0.01
    )


def test_targets_start_unknown_and_overall_warns(model: HealthModel) -> None:
    snap = model.snapshot()
    assert [t.status for t in snap.targets] == [Status.UNKNOWN, Status.UNKNOWN]
    assert snap.status is Status.WARN


def test_running_units_pass(model: HealthModel) -> None:
    model.apply_unit("trader", running("trader.service"))
    model.apply_unit("dashboard", running("dashboard.service"))
    snap = model.snapshot()
    assert snap.status is Status.PASS
    assert snap.target("trader") is not None
    assert snap.target("trader").output == "active (running)"  # type: ignore[union-attr]


def test_critical_failure_fails_overall_and_records_since(
    model: HealthModel, clock: FakeClock
) -> None:
    model.apply_unit("trader", running("trader.service"))
    model.apply_unit("dashboard", running("dashboard.service"))
    clock.advance(30)
    changed = model.apply_unit("trader", failed("trader.service"))
    t = model.target("trader")
    assert changed
    assert t.status is Status.FAIL
    assert t.since == clock.time()
    assert t.output == "failed (failed), result signal"
    assert t.consecutive_failures == 1
    assert model.snapshot().status is Status.FAIL


def test_non_critical_failure_only_warns(model: HealthModel) -> None:
    model.apply_unit("trader", running("trader.service"))
    model.apply_unit("dashboard", failed("dashboard.service", "exit-code"))
    assert model.snapshot().status is Status.WARN


def test_recovery_resets_failures_and_sets_last_success(
    model: HealthModel, clock: FakeClock
) -> None:
    model.apply_unit("trader", failed("trader.service"))
    model.apply_unit("trader", failed("trader.service", "exit-code"))
    assert model.target("trader").consecutive_failures == 2
    clock.advance(5)
    model.apply_unit("trader", running("trader.service", pid=200))
    t = model.target("trader")
    assert (t.status, t.consecutive_failures, t.last_success) == (Status.PASS, 0, clock.time())


def test_unit_not_found_fails_with_words(model: HealthModel) -> None:
    model.apply_unit(
        "trader",
        UnitState(
            unit="trader.service",
            load_state="not-found",
            active_state=ActiveState.INACTIVE,
            sub_state="dead",
        ),
    )
    t = model.target("trader")
    assert t.status is Status.FAIL
    assert "not found" in t.output


@pytest.mark.parametrize(
    ("active", "sub", "expected"),
    [
        (ActiveState.ACTIVE, "running", Status.PASS),
        (ActiveState.RELOADING, "reload", Status.PASS),
        (ActiveState.ACTIVATING, "start", Status.WARN),
        (ActiveState.ACTIVATING, "auto-restart", Status.FAIL),
        (ActiveState.DEACTIVATING, "stop-sigterm", Status.WARN),
        (ActiveState.INACTIVE, "dead", Status.FAIL),
        (ActiveState.FAILED, "failed", Status.FAIL),
        (ActiveState.UNKNOWN, "", Status.UNKNOWN),
    ],
)
def test_unit_verdict(active: ActiveState, sub: str, expected: Status) -> None:
    assert (
        unit_verdict(UnitState(unit="x.service", active_state=active, sub_state=sub))[0] is expected
    )


def test_bus_loss_makes_everything_unknown_with_reason(model: HealthModel) -> None:
    model.apply_unit("trader", running("trader.service"))
    model.set_unknown("bus connection lost")
    model.set_note("bus", "D-Bus: bus connection lost; reconnecting")
    snap = model.snapshot()
    assert {t.status for t in snap.targets} == {Status.UNKNOWN}
    assert snap.target("trader").output == "unknown: bus connection lost"  # type: ignore[union-attr]
    assert snap.status is Status.WARN
    assert snap.notes == ("D-Bus: bus connection lost; reconnecting",)


def test_notes_are_the_daemons_and_outlive_a_reload(clock: FakeClock) -> None:
    """One `Notes` is shared by every fleet's model: a note set before a reload shows after it
    without being copied, one set through the old model's writers still reaches /health, and
    a note alone moves the snapshot's version (the rendered /health is never stale)."""
    notes = Notes()
    spec = [TargetSpec("trader", "trader.service")]
    old = HealthModel(spec, clock, notes=notes)
    notes.set("breaker", "breaker open: host CPU 95% > 90%; probes paused")
    before = old.snapshot()
    new = HealthModel(spec, clock, notes=notes)
    new.carry_over(old)
    new.apply_unit("trader", running("trader.service"))
    assert new.snapshot().notes == ("breaker open: host CPU 95% > 90%; probes paused",)
    notes.writer("http")("HTTP throttled")
    snap = new.snapshot()
    assert snap.notes[-1] == "HTTP throttled"
    assert snap.status is Status.WARN
    assert snap.version > before.version
    notes.set("breaker", None)
    notes.set("http", None)
    assert new.snapshot().notes == ()
    assert new.snapshot().status is Status.PASS
    assert new.snapshot().version > snap.version


def test_snapshot_is_cached_until_something_changes(model: HealthModel) -> None:
    first = model.snapshot()
    assert model.snapshot() is first
    model.apply_unit("trader", running("trader.service"))
    second = model.snapshot()
    assert second is not first
    assert second.version > first.version


def test_probe_failures_need_threshold_then_fail_target(model: HealthModel) -> None:
    model.add_probe("dashboard", "http", "http", ProbeTrack(failure_threshold=3))
    model.apply_unit("dashboard", running("dashboard.service"))
    for _ in range(2):
        model.apply_probe(probe(False, "http: timeout after 2.0 s"))
        assert model.target("dashboard").status is Status.PASS
    model.apply_probe(probe(False, "http: timeout after 2.0 s"))
    t = model.target("dashboard")
    assert t.status is Status.FAIL
    assert t.output == "http: timeout after 2.0 s"
    assert t.probes[0].status is Status.FAIL


def test_one_blip_does_not_flip_and_success_threshold_holds(model: HealthModel) -> None:
    model.add_probe(
        "dashboard", "http", "http", ProbeTrack(failure_threshold=2, success_threshold=2)
    )
    model.apply_unit("dashboard", running("dashboard.service"))
    model.apply_probe(probe(False))
    model.apply_probe(probe(True))
    assert model.target("dashboard").status is Status.PASS
    model.apply_probe(probe(False))
    model.apply_probe(probe(False))
    assert model.target("dashboard").status is Status.FAIL
    model.apply_probe(probe(True))
    assert model.target("dashboard").status is Status.FAIL  # needs two successes
    model.apply_probe(probe(True))
    assert model.target("dashboard").status is Status.PASS


def test_new_main_pid_clears_probe_history(model: HealthModel) -> None:
    model.add_probe("dashboard", "http", "http", ProbeTrack(failure_threshold=1))
    model.apply_unit("dashboard", running("dashboard.service", pid=1))
    model.apply_probe(probe(False))
    assert model.target("dashboard").status is Status.FAIL
    model.apply_unit("dashboard", running("dashboard.service", pid=2))
    assert model.target("dashboard").status is Status.PASS


def test_probe_track_suspect_only_before_confirmation() -> None:
    track = ProbeTrack(failure_threshold=3)
    assert not track.suspect
    track.record(probe(False))
    assert track.suspect
    track.record(probe(False))
    track.record(probe(False))
    assert track.failing and not track.suspect


def test_overall_with_notes_warns() -> None:
    assert overall((), ("breaker open",)) is Status.WARN
    assert overall(()) is Status.PASS


def test_warning_shows_on_the_target_and_never_counts_as_a_failure(model: HealthModel) -> None:
    model.add_probe("dashboard", "http", "http", ProbeTrack(failure_threshold=1))
    model.apply_unit("dashboard", running("dashboard.service"))
    model.apply_probe(probe(Status.WARN, "http: balance: 300 < 500 (warn)"))
    t = model.target("dashboard")
    assert (t.status, t.output, t.consecutive_failures) == (
        Status.WARN,
        "http: balance: 300 < 500 (warn)",
        0,
    )
    assert t.probes[0].status is Status.WARN
    assert model.snapshot().status is Status.WARN
    model.apply_probe(probe(Status.FAIL, "http: balance: 80 < 100"))
    assert model.target("dashboard").status is Status.FAIL
    model.apply_probe(probe(Status.WARN, "http: balance: 300 < 500 (warn)"))
    assert model.target("dashboard").status is Status.WARN  # no longer failing
    model.apply_probe(probe(Status.PASS))
    assert model.target("dashboard").status is Status.PASS


def test_an_unconfirmed_failure_keeps_the_level_it_had(model: HealthModel) -> None:
    model.add_probe("dashboard", "http", "http", ProbeTrack(failure_threshold=3))
    model.apply_unit("dashboard", running("dashboard.service"))
    model.apply_probe(probe(Status.WARN, "warned"))
    model.apply_probe(probe(Status.FAIL, "blip"))
    assert model.target("dashboard").status is Status.WARN
    assert model.target("dashboard").output == "warned"


def test_unknown_counts_neither_way_and_shows_unknown(model: HealthModel) -> None:
    model.add_probe("dashboard", "http", "http", ProbeTrack(failure_threshold=2))
    model.apply_unit("dashboard", running("dashboard.service"))
    model.apply_probe(probe(Status.FAIL, "down"))
    model.apply_probe(probe(Status.UNKNOWN, "exec: cannot run /x: No such file or directory"))
    t = model.target("dashboard")
    assert (t.status, t.consecutive_failures) == (Status.UNKNOWN, 0)
    assert t.probes[0].consecutive_failures == 1  # the failure before it still counts
    model.apply_probe(probe(Status.FAIL, "down"))
    assert model.target("dashboard").status is Status.FAIL


def test_a_failure_outranks_a_warning_of_another_probe(model: HealthModel) -> None:
    model.add_probe("dashboard", "http", "http", ProbeTrack(failure_threshold=1))
    model.add_probe("dashboard", "exec", "exec", ProbeTrack(failure_threshold=1))
    model.apply_unit("dashboard", running("dashboard.service"))
    model.apply_probe(probe(Status.WARN, "warned"))
    model.apply_probe(replace(probe(Status.FAIL, "failed"), probe="exec", kind="exec"))
    assert (model.target("dashboard").status, model.target("dashboard").output) == (
        Status.FAIL,
        "failed",
    )


def test_a_host_target_is_judged_by_its_probes_and_ignores_the_bus(clock: FakeClock) -> None:
    model = HealthModel([TargetSpec("disk", None)], clock)
    assert model.target("disk").output == "waiting for the first probe"
    model.add_probe("disk", "http", "disk", ProbeTrack(failure_threshold=1))
    model.apply_probe(probe(Status.PASS, "disk: / 40% used", target="disk"))
    assert (model.target("disk").status, model.target("disk").output) == (
        Status.PASS,
        "disk: / 40% used",
    )
    model.set_unknown("bus connection lost")
    assert model.target("disk").status is Status.PASS
    model.apply_probe(probe(Status.WARN, "disk: / 85% used (warn at 80%)", target="disk"))
    assert model.target("disk").status is Status.WARN
    assert model.name_for_unit("disk") is None
