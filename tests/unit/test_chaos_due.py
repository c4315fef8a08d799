"""When the chaos verdict holds an alert due, and a resolved notice false: from ground truth
the run keeps itself (the fault log, systemd's view polled by the run, the supervisor's lives),
on records made by hand (`devtools.chaos.due`, pure)."""

from __future__ import annotations

from devtools.chaos.alerts import judge_alerts
from devtools.chaos.due import INF, alert_due, blind, due_after_s, starts, unrepaired_until
from devtools.chaos.plan import Kind, Planned
from devtools.chaos.record import Fault, HealthSample, Life, Record, UnitSample
from supervisor.alerts.policy import Severity
from tests.unit.test_chaos_verdict import T0, both, hang, incident, record, text, units


def short(rec: Record) -> Record:
    """The short run's timing: rounds of 2 s, a probe allowance of 8 s: an alert is due once
    the target was surely down 8 + (3 + 1) * 2 = 16 s."""
    rec.round_s, rec.probe_allowance_s, rec.recovery_window_s = 2.0, 8.0, 15.0
    assert due_after_s(rec) == 16.0
    return rec


def test_an_alert_is_due_when_systemd_shows_the_process_hit_kept_too_long() -> None:
    """Not the supervisor's counters: the fault log and systemd's ExecMainPID, polled by the
    run. The hung process (101) was still the main one 9.5 s, then 20 s after the fault."""
    hung = hang(1, "trader", T0 + 10, T0 + 31)
    rec = short(record([hung], []))
    rec.units = units("trader", (101, 0, 19.5), (300, 20, 100))  # restarted after 10 s
    assert unrepaired_until(rec, hung) == T0 + 19.5
    assert alert_due(rec, hung) is None and not judge_alerts(rec).lost
    rec.units = units("trader", (101, 0, 29.5), (300, 30, 100))  # kept 19.5 s
    due = alert_due(rec, hung)
    assert due is not None and due.at == T0 + 26 and due.why.startswith("down 19.5 s")
    lost = judge_alerts(rec).lost
    assert len([p for p in lost if "no alert for fault 1" in p]) == 2  # in each chat
    rec.messages = incident("trader", T0 + 16, T0 + 31)
    assert not judge_alerts(rec).lost


def test_no_alert_is_due_while_the_supervisor_could_not_act() -> None:
    """Down 19.5 s, but the supervisor was dead for 4 s of it (a life ended, the next one
    became ready later), or its breaker paused the probes: no 16 s without a break."""
    hung = hang(1, "trader", T0 + 10, T0 + 31)
    rec = short(record([hung], []))
    rec.units = units("trader", (101, 0, 29.5), (300, 30, 100))
    rec.lives = [
        Life(1, 50, T0 - 5, ready=T0 - 4, exited=T0 + 18, killed="SIGKILL (fault 2)"),
        Life(2, 51, T0 + 18.5, ready=T0 + 22),
    ]
    assert blind(rec)[:3] == [(-INF, T0 - 4), (T0 + 18, T0 + 22), (INF, INF)]
    assert alert_due(rec, hung) is None
    rec.lives = [Life(1, 50, T0 - 5, ready=T0 - 4)]
    note = "breaker open: host CPU 95% > 90%; probes paused"
    rec.health = [
        HealthSample(
            T0 + i / 10, 0.002, 200, {"trader": "fail"}, {}, note if 150 <= i < 200 else "", 1
        )
        for i in range(400)
    ]
    assert alert_due(rec, hung) is None  # open from 14.9 to 20.0: 4.9 s, then 9.5 s down


def test_a_crash_loop_the_run_held_makes_a_give_up_due() -> None:
    """Systemd started the target 4 times (recovery's max_attempts) within its window, each
    exiting at once while the run held the cause: recovery gave up, an alert is due."""
    loop = Fault(
        Planned(1, 0.0, Kind.CRASH_LOOP, "dashboard", hold_s=15.0),
        start=T0 + 10, lifted=T0 + 25, detected=T0 + 10, repaired=T0 + 30, ended=T0 + 30,
        victim=101,
    )  # fmt: skip
    rec = short(record([loop], []))
    starts_at = (10.3, 12.4, 17.5, 22.6)  # backoff 0, 2, 5, 5 s
    rec.units = [u for n, at in enumerate(starts_at) for u in units("dashboard", (201 + n, at, at))]
    assert starts(rec, "dashboard", T0 + 10, T0 + 25) == [T0 + at for at in starts_at]
    due = alert_due(rec, loop)
    assert due is not None and due.why == "4 starts in 12.3 s while the cause was held"
    assert len(judge_alerts(rec).lost) == 2
    # Three starts only (the fourth after the cause was lifted), and 15 s down < 16 s: not due.
    rec.units = rec.units[:-1] + units("dashboard", (204, 25.5, 40))
    assert alert_due(rec, loop) is None and not judge_alerts(rec).lost
    # A flapping incident open during the loop covers it.
    rec.units = [u for n, at in enumerate(starts_at) for u in units("dashboard", (201 + n, at, at))]
    flapping = text(Severity.WARNING, "dashboard", "flapping", T0 + 14)
    stable = text(Severity.RESOLVED, "dashboard", "stable again after 20s of flapping", T0 + 34)
    rec.messages = both(T0 + 14.1, flapping) + both(T0 + 34.1, stable)
    assert not judge_alerts(rec).lost


def test_a_resolved_after_systemd_shows_a_new_process_is_not_false() -> None:
    """Seen in a short run: position-monitor was restarted (a new ExecMainPID), "resolved" was
    decided 2 s later, and the supervisor was killed; its next life's /health said `warn` for
    it at first, which the old check took for "not yet repaired". The run's own systemd polls
    say the hung process was gone: the notice was true."""
    fault = hang(1, "dashboard", T0 + 10, T0 + 27)  # `repaired` by /health: late
    rec = record([fault], incident("dashboard", T0 + 15, T0 + 20))  # received at T0 + 20.2
    rec.units = units("dashboard", (101, 0, 19.5), (300, 20, 100))
    assert not judge_alerts(rec).false
    rec.units = units("dashboard", (101, 0, 20.5), (300, 21, 100))  # still the hung one
    assert any("not yet repaired" in p for p in judge_alerts(rec).false)
    rec.units = []  # nothing polled: nothing is sure, nothing is called false
    assert not judge_alerts(rec).false


def test_one_start_read_in_many_polls_is_one_start() -> None:
    """Seen in a short run: each poll turned ExecMainStartTimestampMonotonic into wall time
    again, the offset moved by microseconds, and one start counted as four ("4 starts in
    2.0 s"). A PID started again later is another start."""
    rec = short(record([], []))
    drift = [
        UnitSample(T0 + 10 + i / 2, "dashboard", 7, 7, T0 + 9.9 + i * 1e-6, 0, "active/running")
        for i in range(4)
    ]
    reused = UnitSample(T0 + 60, "dashboard", 7, 7, T0 + 59.9, 0, "active/running")
    rec.units = [*drift, reused]
    assert starts(rec, "dashboard", T0, T0 + 100) == [T0 + 9.9, T0 + 59.9]
