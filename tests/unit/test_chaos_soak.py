"""The soak (issue 21): its plan of faults and the figures it reports. Pure."""

from __future__ import annotations

from dataclasses import replace

import pytest

from devtools.chaos.plan import SOAK_PAIRS, Kind, make_plan
from devtools.chaos.record import ProcSample
from devtools.chaos.settings import Settings
from devtools.chaos.soak import GOAL_MIB_PER_H, WARM_S, summarize, table

MIB = 2**20
HOUR = 3600.0


def test_the_soak_plan_is_kills_of_the_heartbeat_units_and_a_hung_dashboard() -> None:
    settings = Settings.soak(120)
    plan = make_plan(2121, settings.shape)

    assert {(p.kind, p.target) for p in plan} == set(SOAK_PAIRS)
    assert {(Kind.KILL, "trader"), (Kind.HANG, "dashboard")} <= set(SOAK_PAIRS)
    assert not any(p.kind is Kind.SUPERVISOR_KILL for p in plan)
    # Two faults a minute, every one planned inside the two hours.
    assert 2 * 120 * 0.9 <= len(plan) <= 2 * 120 * 1.1
    assert max(p.at_s for p in plan) < 120 * 60
    assert plan == make_plan(2121, settings.shape)


def test_the_soak_never_kills_the_supervisor_it_watches() -> None:
    assert not Settings.soak(120).warm_up_kill
    assert Settings.make(10, short=False).warm_up_kill
    assert Settings.soak(120).period_s == Settings.make(10, short=False).period_s


def _samples(growth_mib_per_h: float, *, fds_end: int = 12, hours: float = 2.0) -> list[ProcSample]:
    """One sample a minute from READY=1 at t=0; RSS 60 MiB + 3 MiB in the first 10 minutes
    (its working size), then `growth_mib_per_h`."""
    samples = []
    for minute in range(int(hours * 60) + 1):
        at = minute * 60.0
        warm = min(at / WARM_S, 1.0) * 3
        rss = (60 + warm + growth_mib_per_h * max(at - WARM_S, 0) / HOUR) * MIB
        fds = fds_end if minute > hours * 60 - 10 else 12
        samples.append(ProcSample(at, 1, int(rss), fds, at * 0.001, quiet=minute % 3 != 0))
    return samples


def test_a_steady_footprint_meets_the_goal() -> None:
    soak = summarize(_samples(0.0), life=1, ready_at=0.0)

    assert soak.trend_mib_per_h == pytest.approx(0.0, abs=1e-9)
    assert soak.ok
    minute, mib = soak.rss_mib[0]
    assert (minute, round(mib, 1)) == (10.0, 63.0)
    assert [round(m) for m, _ in soak.rss_mib] == [10, 60, 119]  # the last quiet sample
    assert soak.cpu_percent == pytest.approx(0.1)
    assert soak.lived_s == 2 * HOUR


def test_growth_after_the_warm_up_is_measured_and_judged() -> None:
    slow = summarize(_samples(0.3), life=1, ready_at=0.0)
    leak = summarize(_samples(1.7), life=1, ready_at=0.0)

    assert slow.trend_mib_per_h == pytest.approx(0.3, rel=0.01)
    assert slow.ok
    assert leak.trend_mib_per_h == pytest.approx(1.7, rel=0.01) and not leak.ok
    assert "+1.70 MiB/h (goal < 0.5 MiB/h: NOT met)" in table(leak, 5 * MIB, 240)
    assert GOAL_MIB_PER_H == 0.5
    # A leak keeps its slope after the first hour too.
    assert leak.late_trend_mib_per_h == pytest.approx(1.7, rel=0.01)
    assert "- RSS trend after the first hour: +1.70 MiB/h (shown, not judged)" in table(
        leak, 5 * MIB, 240
    )


def test_a_working_size_that_fills_in_an_hour_is_shown_apart_and_still_judged() -> None:
    # 1 MiB more from minute 10 to 60, then flat: the goal is judged from minute 10 (not met),
    # and the line after the first hour shows that the rise stopped.
    samples = _samples(0.0)
    filled = [
        replace(s, rss_bytes=s.rss_bytes + int(min(max(s.at - WARM_S, 0) / 3000, 1) * MIB))
        for s in samples
    ]
    soak = summarize(filled, life=1, ready_at=0.0)
    assert soak.trend_mib_per_h > GOAL_MIB_PER_H and not soak.ok
    assert soak.late_trend_mib_per_h == pytest.approx(0.0, abs=1e-9)


def test_a_life_of_under_70_minutes_has_no_late_trend() -> None:
    assert summarize(_samples(0.3, hours=1.1), life=1, ready_at=0.0).late_trend_mib_per_h is None
    assert "after the first hour" not in table(
        summarize(_samples(0.3, hours=1.1), life=1, ready_at=0.0), MIB, 100
    )


def test_a_descriptor_more_at_the_end_fails() -> None:
    soak = summarize(_samples(0.0, fds_end=13), life=1, ready_at=0.0)

    assert (soak.fds_start, soak.fds_end) == (12, 13)
    assert not soak.ok


def test_a_life_too_short_to_judge_is_refused() -> None:
    with pytest.raises(ValueError, match="quiet samples after its first 10 minutes"):
        summarize(_samples(0.0, hours=0.15), life=1, ready_at=0.0)


def test_threads_are_reported_after_the_warm_up_at_the_end_and_at_most() -> None:
    samples = [
        ProcSample(s.at, s.life, s.rss_bytes, s.fds, s.cpu_s, s.quiet, threads=t)
        for s, t in zip(_samples(0.0), [3] * 30 + [5] * 60 + [4] * 31, strict=True)
    ]
    soak = summarize(samples, life=1, ready_at=0.0)

    assert soak.threads == (3, 4, 5)
    text = table(soak, MIB, 240)
    assert "- threads: 3 after 10 minutes, 4 at the end, 5 at most" in text
    assert "- RSS trend after the first hour: +0.00 MiB/h (shown, not judged)" in text
    assert summarize(_samples(0.0), life=1, ready_at=0.0).threads is None  # an older report
