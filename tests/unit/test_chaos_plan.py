"""The chaos run's plan and its live judgement (pure parts of devtools.chaos)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devtools.chaos.control import CRASH_LOOP_ATTEMPTS_S, within_budget
from devtools.chaos.judge import Batch, Now, is_repaired, sign_of_detection
from devtools.chaos.observe import parse_actions, parse_health, parse_log_line
from devtools.chaos.plan import ALERTING, SHORT_KINDS, SPECS, Kind, Planned, Shape, make_plan
from devtools.chaos.record import ActionDelta, Fault, HealthSample, Incarnation, LogEvent
from devtools.chaos.settings import critical_targets

REPO = Path(__file__).resolve().parents[2]
LONG = Shape(600.0, (3.0, 12.0), tuple(SPECS))
SHORT = Shape(60.0, (1.5, 4.0), SHORT_KINDS, hold_scale=0.4)


def test_a_seed_always_gives_the_same_plan() -> None:
    assert make_plan(7, LONG) == make_plan(7, LONG)
    assert make_plan(7, LONG) != make_plan(8, LONG)


def test_the_plan_fits_its_shape() -> None:
    plan = make_plan(3, SHORT)
    assert [p.n for p in plan] == list(range(1, len(plan) + 1))
    assert {p.kind for p in plan} <= set(SHORT_KINDS)
    assert all(p.at_s < SHORT.seconds + 2.0 for p in plan)
    for p in plan:
        spec = SPECS[p.kind]
        assert (p.target in spec.targets) if spec.targets else p.target is None
        assert p.hold_s <= spec.hold_s[1] * (SHORT.hold_scale if spec.scaled else 1.0)


def test_a_long_plan_uses_every_kind() -> None:
    kinds = {p.kind for seed in range(3) for p in make_plan(seed, LONG)}
    assert kinds == set(Kind)


def test_telegram_faults_and_bus_changes_come_with_a_fault_to_notice() -> None:
    for seed in range(20):
        steps = make_plan(seed, LONG)
        for i, p in enumerate(steps):
            if p.kind in (Kind.TELEGRAM_DOWN, Kind.TELEGRAM_429):
                assert steps[i + 1].follows == p.n
                assert steps[i + 1].kind in ALERTING  # something to deliver while it lasts
            if p.kind in (Kind.REEXEC, Kind.BUS_KILL):
                assert steps[i + 1].follows == p.n
                assert steps[i + 1].kind is Kind.KILL


def fault(kind: Kind, target: str | None, start: float = 100.0, victim: int = 10) -> Fault:
    return Fault(Planned(1, 0.0, kind, target), start=start, lifted=start, victim=victim)


def sample(at: float, statuses: dict[str, str], notes: str = "") -> HealthSample:
    return HealthSample(at, 0.002, 200, statuses, {}, notes, 1)


def test_a_hang_is_detected_by_a_failing_status_after_it_started() -> None:
    f = fault(Kind.HANG, "trader")
    before = Batch(health=[sample(99.0, {"trader": "fail"})])
    assert sign_of_detection(f, before) is None
    batch = Batch(health=[sample(101.0, {"trader": "pass"}), sample(102.0, {"trader": "fail"})])
    assert sign_of_detection(f, batch) == 102.0


def test_a_kill_is_detected_by_a_new_main_process_or_a_recovery_action() -> None:
    f = fault(Kind.KILL, "dashboard")
    other = Batch(incarnations=[Incarnation("trader", 5, 100.3)])
    assert sign_of_detection(f, other) is None
    assert sign_of_detection(f, Batch(incarnations=[Incarnation("dashboard", 5, 100.3)])) == 100.3
    act = ActionDelta(99.0, 100.9, "dashboard", "restart", "done", 1.0)
    assert sign_of_detection(f, Batch(actions=[act])) == 100.9


def test_supervisor_level_faults_are_detected_from_its_log_and_notes() -> None:
    reexec = fault(Kind.REEXEC, None)
    assert sign_of_detection(reexec, Batch(events=[LogEvent(101.0, "reexec", "")])) == 101.0
    assert sign_of_detection(reexec, Batch(events=[LogEvent(99.0, "reexec", "")])) is None
    bus = fault(Kind.BUS_KILL, None)
    blind = sample(100.5, {"trader": "unknown"}, "D-Bus: connection lost; reconnecting")
    assert sign_of_detection(bus, Batch(health=[blind])) == 100.5


def shows(at: float, critical: tuple[str, ...], life: int = 1) -> HealthSample:
    statuses = {"trader": "pass", "position-monitor": "pass"}
    return HealthSample(at, 0.002, 200, statuses, {}, "", life, critical=critical)


def test_a_reload_is_detected_only_when_health_shows_its_new_config() -> None:
    """The log line "reloaded" is not enough: the life that got the SIGHUP must show the
    critical targets the new config names (a rejected reload never does)."""
    f = fault(Kind.RELOAD, None)
    f.shows, f.life = critical_targets(1), 1
    assert critical_targets(1) != critical_targets(0) == critical_targets(2)
    assert sign_of_detection(f, Batch(events=[LogEvent(101.0, "reloaded", "")])) is None
    old = Batch(health=[shows(101.0, critical_targets(0))])
    assert sign_of_detection(f, old) is None
    before = Batch(health=[shows(99.0, critical_targets(1))])
    assert sign_of_detection(f, before) is None
    # A later life reads the file at its start: that shows the file, not the reload.
    assert sign_of_detection(f, Batch(health=[shows(101.0, critical_targets(1), 2)])) is None
    batch = Batch(health=[shows(101.0, critical_targets(0)), shows(101.2, critical_targets(1))])
    assert sign_of_detection(f, batch) == 101.2


def test_health_says_which_targets_are_critical() -> None:
    doc = {
        "checks": {
            "trader": [{"status": "pass", "critical": True}],
            "dash": [{"status": "pass", "critical": False}],
        }
    }
    assert parse_health(doc).critical == ("trader",)


def now(at: float, health: HealthSample | None, pid: int = 11, since: float = 0.0) -> Now:
    return Now(at, health, {"trader": pid}, {"trader": 104.0}, 999, None, since)


def test_repaired_means_passing_again_with_a_new_main_process() -> None:
    f = fault(Kind.HANG, "trader", victim=10)
    passing = sample(105.0, {"trader": "pass"})
    assert not is_repaired(f, now(105.0, passing), cause_gone=False)  # the hung one still runs
    assert not is_repaired(f, now(105.0, passing, pid=10), cause_gone=True)
    assert not is_repaired(f, now(105.0, sample(105.0, {"trader": "fail"})), cause_gone=True)
    assert not is_repaired(f, now(105.0, sample(99.0, {"trader": "pass"})), cause_gone=True)
    # Said before the new main process started (at 104): not about it.
    assert not is_repaired(f, now(105.0, sample(103.0, {"trader": "pass"})), cause_gone=True)
    assert is_repaired(f, now(105.0, passing), cause_gone=True)


def test_telegram_is_repaired_once_what_waited_for_it_is_delivered() -> None:
    f = fault(Kind.TELEGRAM_DOWN, None)  # back up at 100
    assert not is_repaired(f, now(120.0, None, since=95.0), cause_gone=True)
    assert is_repaired(f, now(120.0, None, since=110.0), cause_gone=True)  # queued since
    assert is_repaired(f, now(120.0, None, since=float("inf")), cause_gone=True)  # none


def test_the_supervisors_outputs_are_read() -> None:
    doc = {
        "output": "breaker open: host CPU 95% > 90%; probes paused",
        "checks": {
            "trader": [{"status": "warn", "state": "unknown", "output": "unknown: bus"}],
            "dashboard": [
                {
                    "status": "fail",
                    "output": "http: timed out",
                    "consecutiveFailures": 4,
                    "since": "2023-11-14T22:13:20.250Z",
                }
            ],
        },
    }
    health = parse_health(doc)
    assert health.statuses == {"trader": "unknown", "dashboard": "fail"}
    assert health.outputs["dashboard"] == "http: timed out"
    assert health.notes.startswith("breaker open")
    metrics = (
        "# TYPE supervisor_recovery_actions_total counter\n"
        'supervisor_recovery_actions_total{action="restart",result="done",target="trader"} 2.0\n'
        'supervisor_recovery_actions_created{action="restart",target="trader"} 1.7e9\n'
    )
    assert parse_actions(metrics) == {("trader", "restart", "done"): 2.0}
    line = (
        "2024-05-01 12:00:01,250 WARNING supervisor.watch.systemd: systemd re-executed: following"
    )
    at, what = parse_log_line(line + " its new bus name :1.9", 0.0)
    assert what == "reexec"
    assert at % 60 == 1.25
    assert parse_log_line("  File x.py, line 3", at) == (at, None)


def test_a_seed_gives_the_same_plan_in_every_process() -> None:
    """Not only within one interpreter: string hashing differs between processes."""
    code = (
        "from devtools.chaos.settings import Settings\n"
        "from devtools.chaos.plan import make_plan\n"
        "print(repr(make_plan(10, Settings.make(10, short=True).shape)))\n"
    )
    plans = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2", "3")
    }
    assert len(plans) == 1
    assert "Planned(n=1" in plans.pop()


def _started(n: int, kind: Kind, target: str, start: float, ended: float | None) -> Fault:
    fault = Fault(Planned(n, 0.0, kind, target))
    fault.start, fault.ended = start, ended
    return fault


def test_a_fault_never_lands_beyond_its_targets_recovery_budget() -> None:
    # Seed 10's dashboard in the short run: kills at 53, 57 and 62 s after a crash loop that
    # ended at 51 s; a SIGSTOP due at 67 s would be the budget's fifth failure in 30 s, given
    # up on and repaired only by the retry 20 s later.
    kills = [_started(n, Kind.KILL, "dashboard", at, at + 2) for n, at in ((11, 53), (15, 57))]
    loop = _started(7, Kind.CRASH_LOOP, "dashboard", 28, 51)
    faults = [loop, *kills]

    # At 67 s: the loop's last attempt (40 s), its retry (51 s) and the two kills.
    assert CRASH_LOOP_ATTEMPTS_S == (0, 2, 7, 12)
    assert not within_budget(faults, Kind.SIGSTOP, "dashboard", 67, 30.0)
    assert within_budget(faults, Kind.SIGSTOP, "dashboard", 81, 30.0)  # a window after it ended
    assert within_budget(faults, Kind.SIGSTOP, "trader", 67, 30.0)  # another target's budget
    faults.append(_started(17, Kind.KILL, "dashboard", 81.5, 83))
    faults.append(_started(20, Kind.HANG, "dashboard", 84, 90))
    # 57, 81.5 and 84 s in the window (53 s is past it): a 4th is the budget's last attempt.
    assert within_budget(faults, Kind.KILL, "dashboard", 84.5, 30.0)
    faults.append(_started(22, Kind.KILL, "dashboard", 85, 86))
    assert not within_budget(faults, Kind.KILL, "dashboard", 86, 30.0)  # a 5th would be given up on
    assert within_budget(faults, Kind.KILL, "dashboard", 87.5, 30.0)  # the kill at 57 s is 30 s old


def test_a_crash_loop_starts_on_a_whole_budget() -> None:
    faults = [_started(3, Kind.KILL, "trader", 10, 11)]

    assert not within_budget(faults, Kind.CRASH_LOOP, "trader", 20, 30.0)
    assert within_budget(faults, Kind.CRASH_LOOP, "trader", 40.5, 30.0)
    assert within_budget(faults, Kind.KILL, "trader", 20, 30.0)


def test_a_crash_loop_counts_its_attempts_when_they_were_made() -> None:
    # Begun at 100 s: attempts at 100, 102, 107 and 112 s, given up on, retried and passing
    # again at 134 s. With the short run's 15 s window only that retry is left at 134 s.
    loop = _started(7, Kind.CRASH_LOOP, "dashboard", 100, 134)

    assert within_budget([loop], Kind.KILL, "dashboard", 134, 15.0)
    assert not within_budget([loop], Kind.CRASH_LOOP, "dashboard", 134, 15.0)
    assert within_budget([loop], Kind.CRASH_LOOP, "dashboard", 149, 15.0)
    # With 30 s, the attempts at 107 and 112 s are still in it: 3 with the retry.
    kill = _started(8, Kind.KILL, "dashboard", 135, 136)
    assert within_budget([loop], Kind.KILL, "dashboard", 135, 30.0)
    assert not within_budget([loop, kill], Kind.KILL, "dashboard", 136, 30.0)
    assert not within_budget([_started(9, Kind.CRASH_LOOP, "x", 1, None)], Kind.KILL, "x", 9, 15.0)
