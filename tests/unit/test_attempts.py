"""Failed API-key attempts per client, with a clock moved by hand."""

from __future__ import annotations

from supervisor.api import attempts
from supervisor.api.attempts import KeyAttempts
from tests.clock import FakeClock


def test_each_failure_in_a_row_doubles_the_hold_up_to_a_cap() -> None:
    keys = KeyAttempts(FakeClock(), first_delay_s=0.25, max_delay_s=4.0)
    holds = [keys.failed("127.0.0.1")[1] for _ in range(7)]
    assert holds == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert keys.failed("127.0.0.1")[0] == 8


def test_clients_pay_for_their_own_failures() -> None:
    keys = KeyAttempts(FakeClock())
    for _ in range(5):
        keys.failed("10.0.0.9")
    assert keys.failed("10.0.0.7") == (1, attempts.FIRST_DELAY_S)


def test_the_right_key_or_a_quiet_while_starts_again() -> None:
    clock = FakeClock()
    keys = KeyAttempts(clock)
    keys.failed("a")
    keys.failed("a")
    keys.succeeded("a")
    assert keys.failed("a")[0] == 1
    keys.failed("a")
    clock.advance(attempts.FORGET_AFTER_S + 1)
    assert keys.failed("a")[0] == 1


def test_memory_is_bounded_forgetting_the_oldest_client() -> None:
    keys = KeyAttempts(FakeClock())
    keys.failed("first")
    keys.failed("first")
    for n in range(attempts.MAX_CLIENTS):
        keys.failed(f"client-{n}")
    assert keys.failed("first")[0] == 1  # forgotten: it was the least recent


def test_a_very_long_run_of_failures_stays_at_the_cap() -> None:
    keys = KeyAttempts(FakeClock(), first_delay_s=0.25, max_delay_s=4.0)
    for _ in range(5000):
        count, hold = keys.failed("x")
    assert (count, hold) == (5000, 4.0)
