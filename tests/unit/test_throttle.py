"""The HTTP throttle: CPU-time buckets per client, a reserve for /health and /metrics, and
what serving cost in a sample (taken off our own CPU before the breaker judges it)."""

from __future__ import annotations

from supervisor.guard.throttle import BUSY_EVENTS_PER_S, Throttle


def test_a_client_within_its_share_is_never_refused_whatever_its_rate() -> None:
    t = Throttle(share_percent=2.0, burst_s=0.1)
    for i in range(1000):  # 50 requests/s of /health for 20 s, 0.1 ms of CPU each
        now = i / 50
        assert t.admit("127.0.0.1", reserve="/health", now=now) is None
        t.charge("127.0.0.1", 0.0001, now)
    assert t.refused == 0


def test_an_expensive_client_is_refused_until_it_has_credit_again() -> None:
    t = Throttle(share_percent=2.0, burst_s=0.1)  # 20 ms of CPU a second
    admitted = 0
    for _ in range(20):  # 15 ms pages as fast as it can at one instant
        if t.admit("a", reserve=None, now=0.0) is None:
            t.charge("a", 0.015, 0.0)
            admitted += 1
    assert admitted == 7  # 0.1 s of burst, 15 ms each: the 7th goes into debt
    wait = t.admit("a", reserve=None, now=0.0)
    assert wait == 1  # 5 ms of debt at 20 ms/s: 0.25 s, said in whole seconds
    assert t.admit("a", reserve=None, now=0.2) is not None
    assert t.admit("a", reserve=None, now=0.3) is None  # in credit again
    assert t.admit("b", reserve=None, now=0.0) is None  # another client pays nothing for a


def test_cheap_requests_of_a_client_in_debt_come_from_a_bounded_reserve() -> None:
    t = Throttle(share_percent=2.0, burst_s=0.1, reserve_per_s=5)
    t.charge("a", 1.0, 0.0)  # deep in debt: a flood of history pages
    assert t.admit("a", reserve=None, now=0.0) is not None
    taken = [t.admit("a", reserve="/health", now=0.0) is None for _ in range(6)]
    assert taken == [True] * 5 + [False]
    assert t.admit("a", reserve="/metrics", now=0.0) is None  # a reserve per route
    assert t.admit("a", reserve="/health", now=0.2) is None  # the reserve refills at 5/s
    assert t.admit("a", reserve="/health", now=0.2) is not None


def test_a_sample_says_what_serving_cost_and_starts_again() -> None:
    t = Throttle()
    t.charge("a", 0.03, 0.0)
    t.charge("b", 0.01, 0.0)
    percent, busy = t.observe(2.0)
    assert percent == 2.0  # 40 ms in 2 s
    assert not busy
    assert t.observe(2.0) == (0.0, False)


def test_a_flood_of_connections_is_busy_whatever_was_measured() -> None:
    t = Throttle()
    for _ in range(int(BUSY_EVENTS_PER_S * 2) + 1):
        t.seen()
    assert t.observe(2.0)[1] is True
    assert t.observe(2.0)[1] is False  # counted per sample: the flood stopped


def test_refusing_is_said_only_while_clients_are_turned_away() -> None:
    t = Throttle(share_percent=1.0, burst_s=0.01)
    t.observe(2.0)
    assert not t.refusing
    t.charge("a", 1.0, 0.0)
    t.admit("a", reserve=None, now=0.0)
    t.observe(2.0)
    assert t.refusing
    t.observe(2.0)
    assert not t.refusing  # the client went away


def test_clients_are_bounded() -> None:
    t = Throttle()
    for i in range(5000):
        t.charge(f"10.0.{i // 256}.{i % 256}", 0.001, 0.0)
    assert t.clients <= 1024
