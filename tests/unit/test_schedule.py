"""Fast confirm and thresholds with an injected clock: no event loop, no sleeping."""

from __future__ import annotations

from supervisor.model import ProbeResult, Status
from supervisor.probing.schedule import ProbeSchedule, detection_bound_s
from supervisor.watch.health import ProbeTrack
from tests.clock import FakeClock


def result(ok: bool) -> ProbeResult:
    return ProbeResult(
        target="t",
        probe="http",
        kind="http",
        status=Status.PASS if ok else Status.FAIL,
        output="x",
        duration_s=0.0,
    )


def drive(outcomes: list[bool], timeout: float = 2.0) -> tuple[ProbeTrack, list[float]]:
    """Run the schedule over outcomes; failed probes cost their full timeout (a hang)."""
    clock = FakeClock()
    track = ProbeTrack(failure_threshold=3, success_threshold=1)
    sched = ProbeSchedule(track, period_s=5.0, confirm_s=0.5, first_at=clock.monotonic())
    starts = []
    for ok in outcomes:
        clock.advance(sched.next_at - clock.monotonic())
        started = clock.monotonic()
        starts.append(started - 1000.0)
        clock.advance(0.01 if ok else timeout)
        track.record(result(ok))
        sched.ran(started, clock.monotonic())
    return track, starts


def test_healthy_probes_run_every_period() -> None:
    _track, starts = drive([True, True, True])
    assert starts == [0.0, 5.0, 10.0]


def test_first_failure_is_confirmed_quickly() -> None:
    track, starts = drive([True, False, False, False])
    # 5.0 hangs 2 s, then re-probes 0.5 s later (7.5), again (10.0): confirmed at 12.0.
    assert starts == [0.0, 5.0, 7.5, 10.0]
    assert track.failing


def test_hang_detection_matches_the_documented_arithmetic() -> None:
    track, starts = drive([False, False, False])
    confirmed_at = starts[-1] + 2.0
    assert track.failing
    # Here the hang began just as a probe started (no wait), so the bound minus a period.
    assert confirmed_at == detection_bound_s(5.0, 2.0, 3, 0.5) - 5.0 == 7.0


def test_a_single_blip_does_not_flip_and_period_resumes() -> None:
    track, starts = drive([True, False, True, True])
    assert not track.failing
    assert starts == [0.0, 5.0, 7.5, 12.5]


def test_once_confirmed_failing_reprobes_at_the_period() -> None:
    track, starts = drive([False, False, False, False, True])
    assert starts[3] - starts[2] == 5.0  # failing: no more fast confirms
    assert not track.failing  # one success recovers (success_threshold 1)


def test_skipped_waits_a_period() -> None:
    sched = ProbeSchedule(ProbeTrack(), 5.0, 0.5, first_at=0.0)
    assert sched.skipped(3.0) == 8.0
