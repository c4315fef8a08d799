"""The HTTP throttle: a token bucket while our CPU is over budget, and whether serving was
to blame for the overage (so the breaker leaves probing alone)."""

from __future__ import annotations

from supervisor.guard.throttle import Throttle


def test_open_admits_everything() -> None:
    t = Throttle(rate_per_s=2, burst=2)
    assert all(t.admit(0.0) for _ in range(100))
    assert t.refused == 0


def test_limited_admits_a_burst_then_the_rate() -> None:
    t = Throttle(rate_per_s=2, burst=2)
    t.observe(over_budget=True, now=10.0, interval_s=2.0)
    assert t.limited
    assert [t.admit(10.0) for _ in range(3)] == [True, True, False]
    assert not t.admit(10.4)  # 0.8 of a token
    assert t.admit(10.5)  # one token back after half a second at 2/s
    assert t.refused == 2
    assert t.retry_after_s == 2  # the next sample, when the verdict may change


def test_back_under_budget_opens_again() -> None:
    t = Throttle(rate_per_s=1, burst=1)
    t.observe(True, 0.0, 2.0)
    t.admit(0.0)
    assert not t.admit(0.0)
    t.observe(False, 2.0, 2.0)
    assert not t.limited
    assert all(t.admit(2.0) for _ in range(10))


def test_clients_before_any_throttling_are_to_blame() -> None:
    """Throttle first: the first overage with clients around is never probing's own."""
    t = Throttle()
    t.seen()
    assert t.observe(True, 0.0, 2.0) is True


def test_idle_http_leaves_the_overage_to_probing() -> None:
    t = Throttle()
    assert t.observe(True, 0.0, 2.0) is False


def test_clients_within_the_admitted_rate_are_not_to_blame() -> None:
    t = Throttle(rate_per_s=10)
    t.observe(True, 0.0, 2.0)
    for _ in range(40):  # 10 requests/s for 2 s, each on a connection of its own
        t.seen()
    assert t.observe(True, 2.0, 2.0) is False


def test_a_flood_while_throttled_is_to_blame() -> None:
    t = Throttle(rate_per_s=10)
    t.observe(True, 0.0, 2.0)
    for _ in range(500):
        t.seen()
    assert t.observe(True, 2.0, 2.0) is True
    assert t.observe(True, 4.0, 2.0) is False  # counted per interval: the flood stopped


def test_refusing_is_said_only_while_clients_are_turned_away() -> None:
    t = Throttle(rate_per_s=1, burst=1)
    t.observe(True, 0.0, 2.0)
    assert t.limited and not t.refusing  # over budget, but nobody refused yet
    t.admit(0.0)
    t.admit(0.0)
    t.observe(True, 2.0, 2.0)
    assert t.refusing
    t.observe(True, 4.0, 2.0)
    assert not t.refusing  # still limited, the clients went away
    t.admit(4.0)
    t.admit(4.0)
    t.admit(4.0)
    t.observe(False, 6.0, 2.0)
    assert not t.refusing  # back under budget: open again
