"""The breaker's transitions with explicit sample times: sustain, cooldown, hysteresis."""

from __future__ import annotations

import pytest

from supervisor.config import BreakerConfig, BudgetConfig, schema
from supervisor.guard.breaker import Breaker, LoadSample


def sample(
    at: float, cpu: float = 10, mem: float = 30, own_cpu: float = 0.1, rss: float = 30
) -> LoadSample:
    return LoadSample(at, cpu, mem, own_cpu, rss)


@pytest.fixture
def breaker() -> Breaker:
    return Breaker(BreakerConfig(sustain_s=10, cooldown_s=60), BudgetConfig())


def test_a_short_spike_does_not_trip(breaker: Breaker) -> None:
    assert not breaker.observe(sample(0, cpu=99))
    assert not breaker.observe(sample(8, cpu=99))
    assert not breaker.observe(sample(9, cpu=50))  # the condition broke: the clock restarts
    assert not breaker.observe(sample(18, cpu=99))
    assert not breaker.open


def test_sustained_cpu_trips_with_reason(breaker: Breaker) -> None:
    breaker.observe(sample(0, cpu=95))
    assert breaker.observe(sample(10, cpu=96))
    assert breaker.open
    assert breaker.reason == "host CPU 96% > 90%"
    assert breaker.describe() == "breaker open: host CPU 96% > 90%; probes paused"
    assert breaker.trips == 1


def test_closes_only_after_cooldown_and_below_resume(breaker: Breaker) -> None:
    breaker.observe(sample(0, mem=90))
    breaker.observe(sample(10, mem=90))
    assert breaker.open
    assert not breaker.observe(sample(30, mem=50))  # calm, but within the cooldown
    assert not breaker.observe(sample(71, mem=80))  # under trip, over resume: hysteresis
    assert breaker.observe(sample(72, mem=67))
    assert not breaker.open
    assert breaker.describe() == "breaker closed"


def test_own_budget_trips_too(breaker: Breaker) -> None:
    breaker.observe(sample(0, own_cpu=3.0))
    assert breaker.observe(sample(10, own_cpu=2.5))
    assert breaker.reason == "own CPU 2.5% > budget 1%"
    b2 = Breaker(BreakerConfig(sustain_s=0), BudgetConfig(memory_mb=50, memory_hard_mb=60))
    assert b2.observe(sample(0, rss=55))
    assert b2.reason == "own memory 55 MB > budget 50 MB"


def test_disabled_never_trips() -> None:
    b = Breaker(BreakerConfig(enabled=False, sustain_s=0), BudgetConfig())
    assert not b.observe(sample(0, cpu=100))
    assert not b.open


def test_it_always_retries_and_can_trip_again(breaker: Breaker) -> None:
    for cycle in range(3):
        t = cycle * 1000
        breaker.observe(sample(t, cpu=99))
        assert breaker.observe(sample(t + 10, cpu=99))
        assert breaker.observe(sample(t + 80, cpu=20))
    assert breaker.trips == 3


def test_resume_must_be_below_trip() -> None:
    with pytest.raises(ValueError, match="resume_cpu_percent must be below"):
        schema.BreakerConfig(trip_cpu_percent=50, resume_cpu_percent=60)


def test_own_cpu_of_a_busy_client_never_trips(breaker: Breaker) -> None:
    """A client's cost is throttled (guard.throttle), it never pauses probing."""
    for at in range(0, 100, 2):
        assert not breaker.observe(
            LoadSample(at, 10, 30, own_cpu_percent=7.0, own_rss_mb=30, serving_busy=True)
        )
    assert not breaker.open
    breaker.observe(sample(100, own_cpu=7.0))  # serving quiet: the overage is probing's own
    assert breaker.observe(sample(110, own_cpu=7.0))
    assert breaker.reason == "own CPU 7.0% > budget 1%"


def test_a_busy_client_does_not_hold_the_breaker_open(breaker: Breaker) -> None:
    breaker.observe(sample(0, own_cpu=5.0))
    assert breaker.observe(sample(10, own_cpu=5.0))
    busy = LoadSample(70, 10, 30, own_cpu_percent=5.0, own_rss_mb=30, serving_busy=True)
    assert breaker.observe(busy)
    assert not breaker.open


def test_own_cpu_while_failures_are_handled_never_trips(breaker: Breaker) -> None:
    """Restarting, reading why, alerting: that CPU is the job; pausing probes mid-incident
    would hide whether recovery worked (the chaos run's breaker opened on own CPU 3.3 %)."""
    for at in range(0, 100, 2):
        handling = LoadSample(at, 10, 30, own_cpu_percent=3.3, own_rss_mb=30, handling=True)
        assert not breaker.observe(handling)
    breaker.observe(sample(100, own_cpu=3.3))  # nothing handled for a while: overhead again
    assert breaker.observe(sample(110, own_cpu=3.3))
    assert breaker.reason == "own CPU 3.3% > budget 1%"


def test_the_host_still_trips_it_while_failures_are_handled(breaker: Breaker) -> None:
    breaker.observe(LoadSample(0, 95, 30, own_cpu_percent=3.0, own_rss_mb=30, handling=True))
    assert breaker.observe(LoadSample(10, 96, 30, 3.0, 30, handling=True))
    assert breaker.reason == "host CPU 96% > 90%"


def test_a_failure_to_handle_closes_a_breaker_opened_on_own_cpu(breaker: Breaker) -> None:
    breaker.observe(sample(0, own_cpu=5.0))
    assert breaker.observe(sample(10, own_cpu=5.0))
    assert not breaker.observe(sample(70, own_cpu=5.0))  # still over: stays open
    assert breaker.observe(LoadSample(72, 10, 30, 5.0, 30, handling=True))
    assert not breaker.open


def test_a_reload_reconfigures_it_in_place_open_and_counting(breaker: Breaker) -> None:
    """A reload's new thresholds apply to the one breaker everyone holds; an open breaker
    stays open with its reason and trips (as the replaced-and-carried-over one did)."""
    breaker.observe(sample(0, cpu=95))
    breaker.observe(sample(10, cpu=95))
    breaker.reconfigure(
        BreakerConfig(sustain_s=10, cooldown_s=60, resume_cpu_percent=40), BudgetConfig()
    )
    assert breaker.open
    assert (breaker.reason, breaker.trips) == ("host CPU 95% > 90%", 1)
    assert not breaker.observe(sample(80, cpu=50))  # under the old resume (72), not the new
    assert breaker.observe(sample(81, cpu=39))
    assert breaker.config.resume_cpu_percent == 40
