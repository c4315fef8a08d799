"""One timetable for many probes, driven as `runner.drive` drives it, on an injected clock.

A probe alone keeps its period exactly; probes due close together share one wake-up, a probe
going at most SHARE_MAX_S (10 % of a short period) early to join one that is due, never late,
and a confirm re-probe never early.
"""

from __future__ import annotations

import random

from supervisor.model import ProbeResult, Status
from supervisor.probing.schedule import SHARE_MAX_S, ProbeSchedule, Timetable
from supervisor.watch.health import ProbeTrack
from tests.clock import FakeClock

PERIOD = 5.0


def result(ok: bool) -> ProbeResult:
    status = Status.PASS if ok else Status.FAIL
    return ProbeResult("t", "p", "heartbeat", status, "x", 0.0)


class Probe:
    """A probe's schedule and what happened to it: its start times, its outcomes to come."""

    def __init__(
        self, first_at: float, period_s: float = PERIOD, fails: int = 0, confirm_s: float = 0.5
    ) -> None:
        self.track = ProbeTrack(failure_threshold=3, success_threshold=1)
        self.schedule = ProbeSchedule(self.track, period_s, confirm_s, first_at)
        self.first = first_at
        self.starts: list[float] = []
        self.fails = fails  # how many of its next runs fail

    def gaps(self) -> list[float]:
        return [round(b - a, 9) for a, b in zip(self.starts, self.starts[1:], strict=False)]


def drive(probes: list[Probe], clock: FakeClock, until: float) -> list[float]:
    """The loop of `runner.drive`, each run instant; returns the times the timer woke."""
    table: Timetable[Probe] = Timetable()
    for p in probes:
        table.put(p, p.schedule.next_at, p.schedule.early_s)
    wakes = []
    while (at := table.next_at()) is not None and at <= until:
        clock.advance(max(0.0, at - clock.monotonic()))
        now = clock.monotonic()
        wakes.append(now)
        for p in table.due(now):
            p.starts.append(now)
            p.track.record(result(p.fails <= 0))
            p.fails -= 1
            p.schedule.ran(now, now)
            table.put(p, p.schedule.next_at, p.schedule.early_s)
    return wakes


def test_a_probe_alone_keeps_its_period() -> None:
    clock = FakeClock()
    t0 = clock.monotonic()
    p = Probe(t0 + 1.0)
    wakes = drive([p], clock, t0 + 21.0)
    assert p.starts == wakes == [t0 + 1.0, t0 + 6.0, t0 + 11.0, t0 + 16.0, t0 + 21.0]


def test_a_probe_due_within_the_share_goes_early_once_then_both_share_every_wake() -> None:
    clock = FakeClock()
    t0 = clock.monotonic()
    a, b = Probe(t0), Probe(t0 + 0.2)
    wakes = drive([a, b], clock, t0 + 20.0)
    assert wakes == [t0, t0 + 5.0, t0 + 10.0, t0 + 15.0, t0 + 20.0]
    assert a.starts == b.starts == wakes  # b went 0.2 s early once, to share a's wake-up


def test_a_probe_due_beyond_the_share_keeps_its_own_time() -> None:
    clock = FakeClock()
    t0 = clock.monotonic()
    a, b = Probe(t0), Probe(t0 + SHARE_MAX_S + 0.01)
    drive([a, b], clock, t0 + 21.0)
    assert b.starts[0] == t0 + SHARE_MAX_S + 0.01
    assert a.gaps() == b.gaps() == [PERIOD] * 4


def test_the_share_is_ten_percent_of_a_short_period() -> None:
    clock = FakeClock()
    t0 = clock.monotonic()
    a, near, far = Probe(t0, 1.0), Probe(t0 + 0.1, 1.0), Probe(t0 + 0.11, 1.0)
    drive([a, near, far], clock, t0 + 3.0)
    assert near.starts[0] == t0  # 0.1 s of a 1 s period: early with a
    assert far.starts[0] == t0 + 0.11  # beyond 10 %: on its own


def test_a_confirm_reprobe_never_goes_early() -> None:
    clock = FakeClock()
    t0 = clock.monotonic()
    failing = Probe(t0, fails=1, confirm_s=1.0)  # fails at t0: re-probe due at t0 + 1.0
    other = Probe(t0 + 0.7)  # wakes the timer 0.3 s before that re-probe is due
    drive([failing, other], clock, t0 + 2.0)
    assert failing.starts == [t0, t0 + 1.0]
    assert other.starts == [t0 + 0.7]


def test_no_probe_is_ever_late_and_a_hundred_share_few_wakeups() -> None:
    clock = FakeClock()
    t0 = clock.monotonic()
    rng = random.Random(7)
    probes = [Probe(t0 + rng.uniform(0, PERIOD)) for _ in range(100)]
    wakes = drive(probes, clock, t0 + 60.0)
    for p in probes:
        assert all(PERIOD - SHARE_MAX_S <= g <= PERIOD for g in p.gaps()), p.gaps()
        assert p.first - SHARE_MAX_S <= p.starts[0] <= p.first
    # One wake-up a probe run (1,200 in 60 s) without the share; with it, at most one per
    # SHARE_MAX_S of the period once the groups have formed.
    settled = [w for w in wakes if w >= t0 + PERIOD]
    assert len(settled) <= (60.0 - PERIOD) / SHARE_MAX_S
    print(f"{len(wakes)} wake-ups for {sum(len(p.starts) for p in probes)} probe runs")


def test_due_takes_nothing_before_the_earliest_is_due() -> None:
    table: Timetable[str] = Timetable()
    table.put("a", 10.0, early_s=0.5)
    assert table.due(9.9) == []  # within a's share, but nothing else is due to wake for
    assert table.next_at() == 10.0
    assert table.due(10.0) == ["a"]
    assert len(table) == 0
