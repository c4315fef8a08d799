"""Deliberate stops, start-up grace, holds and flapping: the pure decisions, with a fake clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from supervisor.alerts.policy import AlertPolicy, Severity
from supervisor.config import AlertsConfig, RecoveryConfig
from supervisor.model import ActiveState, Hold, ProbeResult, Status, UnitState
from supervisor.recovery.policy import Action, Recovery
from supervisor.times import parse_duration
from supervisor.watch import intent
from supervisor.watch.health import HealthModel, ProbeTrack, TargetSpec, unit_verdict
from supervisor.watch.intent import FlapRule, FlapTrack
from supervisor.watch.jobs import JobBook
from tests.clock import FakeClock

UNIT = "trader.service"


def unit(
    state: ActiveState = ActiveState.ACTIVE,
    sub: str = "running",
    pid: int = 100,
    result: str = "success",
    job: str | None = None,
) -> UnitState:
    return UnitState(
        unit=UNIT, active_state=state, sub_state=sub, main_pid=pid, result=result, operator_job=job
    )


def probe(ok: bool) -> ProbeResult:
    status = Status.PASS if ok else Status.FAIL
    output = "heartbeat: fresh" if ok else "heartbeat: 40 s old (max 15 s)"
    return ProbeResult("trader", "heartbeat", "heartbeat", status, output, 0.01)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def model(clock: FakeClock, grace_s: float = 60.0, rule: FlapRule | None = None) -> HealthModel:
    m = HealthModel([TargetSpec("trader", UNIT, critical=True)], clock, rule)
    m.add_probe("trader", "heartbeat", "heartbeat", ProbeTrack(3, 1, grace_s=grace_s))
    m.apply_unit("trader", unit())
    m.apply_probe(probe(True))
    return m


# -- durations -------------------------------------------------------------------------------


def test_durations_in_seconds_minutes_hours_up_to_a_day() -> None:
    assert [parse_duration(t) for t in ("45s", "20m", "2h", "90", "1.5h")] == [
        45,
        1200,
        7200,
        90,
        5400,
    ]
    for bad in ("", "20x", "-5m", "0s", "25h", "m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# -- whose job, and what a stop on request is ------------------------------------------------


def test_our_jobs_are_known_by_path_and_while_our_call_is_in_flight() -> None:
    book = JobBook()
    book.calling(UNIT)
    assert not book.new("/job/1", unit())  # JobNew before our reply: ours
    assert not book.called(UNIT, "/job/1")
    assert not book.new("/job/1", unit())  # a late JobNew of a known path: ours
    assert book.new("/job/2", unit())  # nobody of ours in flight: the operator's
    assert book.pending(UNIT) == "unknown"
    assert book.typed("/job/2", "stop") == UNIT
    assert book.pending(UNIT) == "stop"
    assert book.removed("/job/2") == (UNIT, "stop")
    assert book.pending(UNIT) is None


def test_systemds_own_restart_is_not_a_person() -> None:
    book = JobBook()
    auto = unit(ActiveState.ACTIVATING, "auto-restart", pid=0, result="signal")
    assert not book.new("/job/3", auto)


def test_a_stop_on_request_is_a_stop_job_or_a_clean_end_of_an_unknown_one() -> None:
    dead = {"state": ActiveState.INACTIVE, "sub": "dead", "pid": 0}
    assert intent.stopped_on_request(unit(**dead, job="stop"))  # type: ignore[arg-type]
    assert intent.stopped_on_request(unit(**dead, job="unknown"))  # type: ignore[arg-type]
    assert not intent.stopped_on_request(unit(**dead))  # type: ignore[arg-type]  # nobody asked
    assert not intent.stopped_on_request(unit(**dead, job="restart"))  # type: ignore[arg-type]
    crashed = unit(ActiveState.FAILED, "failed", 0, "signal", job="unknown")
    assert not intent.stopped_on_request(crashed)
    assert intent.stopped_on_request(replace(crashed, operator_job="stop"))


def test_an_operators_restart_passes_through_inactive_without_failing() -> None:
    between = unit(ActiveState.INACTIVE, "dead", pid=0, job="restart")
    assert intent.on_request(between) == (Status.WARN, "inactive (dead): restarting on request")
    stopping = unit(ActiveState.DEACTIVATING, "stop-sigterm", job="unknown")
    assert intent.on_request(stopping) == (
        Status.WARN,
        "deactivating (stop-sigterm): stopping on request",
    )
    failed_start = unit(ActiveState.FAILED, "failed", 0, "exit-code", job="start")
    assert intent.on_request(failed_start) is None  # judged as usual: a failure
    assert intent.on_request(unit(job="start")) is None


def test_stopped_on_request_warns_until_any_start_then_an_unasked_death_fails(
    clock: FakeClock,
) -> None:
    m = model(clock)
    m.apply_unit("trader", unit(ActiveState.DEACTIVATING, "stop-sigterm", job="unknown"))
    assert m.target("trader").status is Status.WARN
    m.apply_unit("trader", unit(ActiveState.INACTIVE, "dead", pid=0, job="unknown"))
    m.apply_unit("trader", unit(ActiveState.INACTIVE, "dead", pid=0))  # JobRemoved
    t = m.target("trader")
    assert (t.status, t.stopped_at) == (Status.WARN, clock.time())
    assert t.output.startswith("stopped on request at ")
    assert m.snapshot().status is Status.WARN  # critical, yet not fail
    clock.advance(3600)
    m.apply_unit("trader", unit(ActiveState.INACTIVE, "dead", pid=0))  # re-read: still stopped
    assert m.target("trader").stopped_at is not None
    m.apply_unit("trader", unit(pid=200, job="start"))
    assert m.target("trader").stopped_at is None
    m.apply_unit("trader", unit(ActiveState.INACTIVE, "dead", pid=0))  # a clean exit, unasked
    assert m.target("trader").status is Status.FAIL


def test_stops_on_request_and_holds_survive_a_restart(clock: FakeClock) -> None:
    m = model(clock)
    m.apply_unit("trader", unit(ActiveState.INACTIVE, "dead", pid=0, job="stop"))
    m.set_hold("trader", Hold(until=clock.time() + 60, reason="deploy", by="cli:me"))
    again = HealthModel([TargetSpec("trader", UNIT)], clock)
    again.restore(m.export())
    again.apply_unit("trader", unit(ActiveState.INACTIVE, "dead", pid=0))  # first read
    t = again.target("trader")
    assert t.status is Status.WARN and t.stopped_at is not None
    assert t.hold == Hold(until=clock.time() + 60, reason="deploy", by="cli:me")


# -- start-up grace --------------------------------------------------------------------------


def test_grace_failures_do_not_count_until_the_first_pass(clock: FakeClock) -> None:
    m = model(clock)
    m.apply_unit("trader", unit(pid=200))  # a new process
    for _ in range(5):
        clock.advance(5)
        m.apply_probe(probe(False))
    t = m.target("trader")
    assert t.status is Status.WARN
    assert t.output.startswith("starting (25 s of 60 s grace)")
    assert t.starting == (25.0, 60.0)
    assert not t.back
    m.apply_probe(probe(True))
    assert m.target("trader").status is Status.PASS
    m.apply_probe(probe(False))  # after the first pass, failures count as usual
    m.apply_probe(probe(False))
    m.apply_probe(probe(False))
    assert m.target("trader").status is Status.FAIL


def test_a_process_that_never_passes_fails_when_its_grace_ends(clock: FakeClock) -> None:
    m = model(clock, grace_s=10)
    m.apply_unit("trader", unit(pid=200))
    m.apply_probe(probe(False))
    clock.advance(9)
    assert m.tick() == pytest.approx(1.0)
    assert m.target("trader").status is Status.WARN
    clock.advance(1)
    m.tick()
    assert m.target("trader").status is Status.FAIL


def test_a_restart_passing_through_inactive_with_its_job_is_no_new_failure() -> None:
    between = replace(unit(ActiveState.INACTIVE, "dead", pid=0), job_id=108)
    assert unit_verdict(between) == (Status.WARN, "inactive (dead): job 108 under way")
    crashed = replace(between, result="signal")  # systemd's Restart= after a crash
    assert unit_verdict(crashed)[0] is Status.FAIL


def test_the_unit_dying_counts_at_once_even_in_grace(clock: FakeClock) -> None:
    m = model(clock)
    m.apply_unit("trader", unit(pid=200))
    m.apply_unit("trader", unit(ActiveState.FAILED, "failed", 0, "signal"))
    assert m.target("trader").status is Status.FAIL


# -- holds -----------------------------------------------------------------------------------


def test_a_held_target_is_not_restarted_and_counts_start_over_at_release(
    clock: FakeClock,
) -> None:
    m = model(clock)
    recovery = Recovery(RecoveryConfig(), clock)
    m.set_hold("trader", Hold(until=clock.time() + 30, reason="db", by="cli:me"))
    m.apply_unit("trader", unit(ActiveState.FAILED, "failed", 0, "signal"))
    decision = recovery.decide(m.target("trader"))
    assert decision.action is Action.HELD
    assert recovery.describe(decision).startswith("held until ")
    clock.advance(30)
    assert [name for name, _h in m.expired_holds()] == ["trader"]
    assert m.release("trader") is not None
    t = m.target("trader")
    assert (t.status, t.since, t.hold) == (Status.FAIL, clock.time(), None)
    assert recovery.decide(t).action is Action.RESTART


def test_a_held_target_sends_nothing_and_a_release_forgets_its_incidents(
    clock: FakeClock,
) -> None:
    m = model(clock)
    alerts = AlertPolicy(AlertsConfig(failure_threshold=1), clock, {"trader": 5.0})
    m.apply_unit("trader", unit(ActiveState.FAILED, "failed", 0, "signal"))
    assert [a.severity for a in alerts.observe(m.target("trader"), False)] == [Severity.WARNING]
    m.set_hold("trader", Hold(until=clock.time() + 30))
    m.apply_unit("trader", unit(pid=300))
    m.apply_probe(probe(True))
    assert alerts.observe(m.target("trader"), False) == []  # no resolved while held
    alerts.forget("trader")
    m.release("trader")
    assert alerts.observe(m.target("trader"), False) == []
    assert alerts.incidents == {}


# -- resolved means passing ------------------------------------------------------------------


def test_no_resolved_while_activating_or_starting_only_once_it_passes(clock: FakeClock) -> None:
    m = model(clock)
    alerts = AlertPolicy(AlertsConfig(failure_threshold=1), clock, {"trader": 5.0})
    m.apply_unit("trader", unit(ActiveState.FAILED, "failed", 0, "signal"))
    assert len(alerts.observe(m.target("trader"), False)) == 1
    m.apply_unit("trader", unit(ActiveState.ACTIVATING, "start-pre", pid=0))
    assert alerts.observe(m.target("trader"), False) == []
    clock.advance(8)
    m.apply_unit("trader", unit(pid=400))
    assert alerts.observe(m.target("trader"), False) == []  # starting: not back yet
    m.apply_probe(probe(True))
    [resolved] = alerts.observe(m.target("trader"), False)
    assert resolved.severity is Severity.RESOLVED
    assert resolved.summary == "resolved after 8s"


# -- flapping --------------------------------------------------------------------------------


def test_flapping_after_count_failures_within_the_window_and_stable_after_quiet() -> None:
    track = FlapTrack(FlapRule(count=3, window_s=900, quiet_s=300))
    for at in (0, 500, 1000):  # the first is out of the window by the third
        track.failed(at)
        track.failed(at + 10)  # still down: the same outage
        track.passed()
    assert track.flapping is None
    track.failed(1100)
    assert track.flapping is not None
    assert (track.flapping.count, track.flapping.span_s) == (3, 600)
    assert not track.settle(passing=True, now=1300)  # not quiet long enough
    assert not track.settle(passing=False, now=1500)  # quiet, but not passing
    assert track.settle(passing=True, now=1400)
    assert track.flapping is None


def test_a_flapping_target_is_one_alert_then_one_stable_again(clock: FakeClock) -> None:
    m = model(clock, rule=FlapRule(count=3, window_s=900, quiet_s=300))
    alerts = AlertPolicy(AlertsConfig(failure_threshold=1), clock, {"trader": 5.0})
    sent = []
    for pid in range(500, 510):  # ten crashes, 20 s apart, each restarted at once
        m.apply_unit("trader", unit(ActiveState.FAILED, "failed", 0, "signal"))
        sent += alerts.observe(m.target("trader"), False)
        m.apply_unit("trader", unit(pid=pid))
        m.apply_probe(probe(True))
        sent += alerts.observe(m.target("trader"), False)
        clock.advance(20)
    kinds = [(a.severity, a.summary) for a in sent]
    assert kinds[-1] == (Severity.WARNING, "flapping")
    assert len(sent) == 5  # failing+resolved twice, then one flapping alert
    assert sent[-1].reason == "3 failures in 40s"
    clock.advance(300)
    m.tick()
    [stable] = alerts.observe(m.target("trader"), False)
    assert (stable.severity, stable.summary) == (
        Severity.RESOLVED,
        "stable again after 8m 20s of flapping",
    )


def test_one_notice_when_a_stop_on_request_lasts(clock: FakeClock) -> None:
    m = model(clock)
    alerts = AlertPolicy(AlertsConfig(stopped_notice_after_s=1800), clock, {"trader": 5.0})
    m.apply_unit("trader", unit(ActiveState.INACTIVE, "dead", pid=0, job="stop"))
    assert alerts.observe(m.target("trader"), False) == []
    clock.advance(1800)
    [notice] = alerts.observe(m.target("trader"), False)
    assert (notice.severity, notice.summary) == (Severity.NOTICE, "stopped on request 30m 00s ago")
    clock.advance(3600)
    assert alerts.observe(m.target("trader"), False) == []  # once
    m.apply_unit("trader", unit(pid=600, job="start"))
    assert alerts.observe(m.target("trader"), False) == []
    assert alerts.incidents == {}


def test_flapping_survives_a_restart_no_stable_again_until_quiet(clock: FakeClock) -> None:
    rule = FlapRule(count=3, window_s=900, quiet_s=300)
    m = model(clock, rule=rule)
    alerts = AlertPolicy(AlertsConfig(failure_threshold=1), clock, {"trader": 5.0})
    for pid in range(500, 503):  # three crashes, 20 s apart, each restarted at once
        m.apply_unit("trader", unit(ActiveState.FAILED, "failed", 0, "signal"))
        alerts.observe(m.target("trader"), False)
        m.apply_unit("trader", unit(pid=pid))
        m.apply_probe(probe(True))
        alerts.observe(m.target("trader"), False)
        clock.advance(20)
    assert "trader:flapping" in alerts.incidents
    # The supervisor restarts: its next life takes back the state file.
    again = HealthModel([TargetSpec("trader", UNIT, critical=True)], clock, rule)
    again.add_probe("trader", "heartbeat", "heartbeat", ProbeTrack(3, 1, grace_s=60))
    again.restore(m.export())
    policy = AlertPolicy(AlertsConfig(failure_threshold=1), clock, {"trader": 5.0})
    policy.restore(alerts.export())
    again.apply_unit("trader", unit(pid=502))
    again.apply_probe(probe(True))
    assert again.target("trader").flapping is not None
    assert policy.observe(again.target("trader"), False) == []  # still flapping, not stable
    clock.advance(300)
    again.tick()
    [stable] = policy.observe(again.target("trader"), False)
    assert (stable.severity, stable.summary[:12]) == (Severity.RESOLVED, "stable again")


def test_a_flapping_target_still_down_after_the_quiet_time_is_no_reason_to_wake(
    clock: FakeClock,
) -> None:
    """Quiet time past, the target failing: "stable again" waits for it to pass (an event).
    The next wake was 0 s away, again and again: the supervision loop spun a core."""
    m = model(clock, grace_s=0, rule=FlapRule(count=3, window_s=900, quiet_s=15))
    for pid in range(500, 503):
        m.apply_unit("trader", unit(ActiveState.FAILED, "failed", 0, "signal"))
        m.apply_unit("trader", unit(pid=pid))
        m.apply_probe(probe(True))
        clock.advance(2)
    m.apply_unit("trader", unit(ActiveState.FAILED, "failed", 0, "signal"))  # and stays down
    assert m.target("trader").flapping is not None
    assert m.tick() == pytest.approx(15)
    clock.advance(20)
    assert m.tick() is None  # nothing timed left: its next update wakes the loop
    m.apply_unit("trader", unit(pid=600))
    m.apply_probe(probe(True))
    m.tick()
    assert m.target("trader").flapping is None  # passing, and quiet since its last failure
