"""Stuck or slow, judged from fake /proc readings with an injected clock."""

from __future__ import annotations

from dataclasses import replace

from supervisor.model import ProbeResult, Status
from supervisor.probing import stuck
from supervisor.probing.schedule import ProbeSchedule
from supervisor.probing.stuck import Latencies, Reading, no_progress, stopped
from supervisor.watch.health import ProbeTrack
from tests.clock import FakeClock

TIMEOUT = 2.0
IDLE = Reading(
    at=0.0, port=5050, pids=(4242,), stopped=False, runnable=False, cpu_ns=7_000_000, queued=1
)


def series(clock: FakeClock, start_after: float, until: float, **change: object) -> list[Reading]:
    """Readings every READ_EVERY_S from `start_after` to `until` s into a probe."""
    out = []
    clock.advance(start_after)
    elapsed = start_after
    while elapsed <= until + 1e-9:
        out.append(replace(IDLE, at=clock.monotonic(), **change))  # type: ignore[arg-type]
        clock.advance(stuck.READ_EVERY_S)
        elapsed += stuck.READ_EVERY_S
    return out


def test_a_stopped_process_is_stuck_after_half_a_second_of_readings() -> None:
    clock = FakeClock()
    readings = series(clock, 0.5, 1.0, stopped=True)
    assert stopped(readings[:2]) is None  # 0.25 s of evidence is not enough
    words = stopped(readings)
    assert words == "stuck: pid 4242 stopped (state T) for 0.5 s, nothing answers"


def test_stopped_must_hold_in_every_reading() -> None:
    clock = FakeClock()
    readings = series(clock, 0.5, 1.5, stopped=True)
    readings[2] = replace(readings[2], stopped=False)  # continued for a moment (a debugger)
    assert stopped(readings) is None


def test_no_cpu_while_connections_queue_for_the_whole_timeout_is_stuck() -> None:
    clock = FakeClock()
    readings = series(clock, 0.5, TIMEOUT)
    words = no_progress(readings, TIMEOUT)
    assert words == (
        "stuck: pid 4242 used 0 ms of CPU in 1.5 s while 1 connection(s) waited to be "
        "accepted on port 5050"
    )


def test_a_window_shorter_than_half_the_timeout_proves_nothing() -> None:
    clock = FakeClock()
    assert no_progress(series(clock, 1.25, TIMEOUT), TIMEOUT) is None


def test_cpu_moving_is_slow_not_stuck() -> None:
    """A spinning handler, or one working slowly: the timeout rule stays the last word."""
    clock = FakeClock()
    readings = series(clock, 0.5, TIMEOUT)
    readings = [replace(r, cpu_ns=r.cpu_ns + i * 5_000_000) for i, r in enumerate(readings)]
    assert no_progress(readings, TIMEOUT) is None
    # 1 % of a core over the window still counts as idle (a background thread ticking).
    readings = series(FakeClock(), 0.5, TIMEOUT)
    readings[-1] = replace(readings[-1], cpu_ns=IDLE.cpu_ns + 14_000_000)
    assert no_progress(readings, TIMEOUT) is not None


def test_a_runnable_thread_is_starved_not_stuck() -> None:
    """Under CPU contention a thread waits in R: no CPU moved, yet it is alive."""
    clock = FakeClock()
    readings = series(clock, 0.5, TIMEOUT)
    readings[3] = replace(readings[3], runnable=True)
    assert no_progress(readings, TIMEOUT) is None


def test_an_empty_or_shrinking_accept_queue_is_progress() -> None:
    clock = FakeClock()
    assert no_progress(series(clock, 0.5, TIMEOUT, queued=0), TIMEOUT) is None
    readings = series(FakeClock(), 0.5, TIMEOUT, queued=3)
    readings[4] = replace(readings[4], queued=2)  # it accepted one
    assert no_progress(readings, TIMEOUT) is None


def test_nothing_is_proved_about_a_port_the_unit_does_not_own_or_that_changed_hands() -> None:
    clock = FakeClock()
    assert no_progress(series(clock, 0.5, TIMEOUT, pids=()), TIMEOUT) is None
    assert stopped(series(FakeClock(), 0.5, 1.5, pids=(), stopped=True)) is None
    readings = series(FakeClock(), 0.5, 1.5, stopped=True)
    readings[-1] = replace(readings[-1], pids=(5151,))  # restarted meanwhile
    assert stopped(readings) is None


def test_overdue_is_learned_from_recent_answers_and_bounded() -> None:
    latencies = Latencies(size=3)
    assert latencies.overdue_after(TIMEOUT) == 0.5  # nothing learned: a quarter of it
    latencies.answered(0.004)
    assert latencies.overdue_after(TIMEOUT) == stuck.FLOOR_S
    latencies.answered(0.2)
    assert latencies.overdue_after(TIMEOUT) == 0.8
    latencies.answered(0.9)
    assert latencies.overdue_after(TIMEOUT) == 1.0  # never past half the timeout
    for _ in range(3):
        latencies.answered(0.01)  # the slow answers are forgotten
    assert latencies.overdue_after(TIMEOUT) == stuck.FLOOR_S


def result(status: Status, *, proved: bool = False) -> ProbeResult:
    return ProbeResult("t", "http", "http", status, "x", TIMEOUT, stuck=proved)


def test_a_stuck_failure_is_final_at_once_and_a_pass_clears_it() -> None:
    track = ProbeTrack(failure_threshold=3, success_threshold=1)
    track.record(result(Status.FAIL, proved=True))
    assert track.failing
    assert track.level is Status.FAIL
    track.record(result(Status.PASS))
    assert not track.failing


def test_a_plain_timeout_still_needs_the_threshold_and_keeps_fast_confirm() -> None:
    clock = FakeClock()
    track = ProbeTrack(failure_threshold=3, success_threshold=1)
    sched = ProbeSchedule(track, period_s=5.0, confirm_s=0.5, first_at=clock.monotonic())
    for n in (1, 2):
        track.record(result(Status.FAIL))
        assert not track.failing
        assert sched.ran(clock.monotonic(), clock.monotonic() + TIMEOUT) == (
            clock.monotonic() + TIMEOUT + 0.5
        ), n
    track.record(result(Status.FAIL))
    assert track.failing
