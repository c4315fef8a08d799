"""The recovery policy: backoff, window, give-up, slow retry, never fighting systemd."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from supervisor.config import RecoveryConfig
from supervisor.config.schema import targets as schema
from supervisor.model import ActiveState, Status, TargetHealth, UnitState
from supervisor.recovery.policy import Action, Recovery
from tests.clock import FakeClock


def health(
    clock: FakeClock,
    *,
    status: Status = Status.FAIL,
    active: ActiveState = ActiveState.FAILED,
    sub: str = "failed",
    result: str = "signal",
    since: float | None = None,
) -> TargetHealth:
    unit = UnitState(unit="d.service", active_state=active, sub_state=sub, result=result)
    return TargetHealth(
        name="d",
        unit="d.service",
        critical=False,
        status=status,
        output="failed (failed)",
        since=clock.time() if since is None else since,
        consecutive_failures=1,
        last_success=None,
        unit_state=unit,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def policy(clock: FakeClock, **kw: Any) -> Recovery:
    cfg = RecoveryConfig(
        **{
            "backoff_s": [0, 10, 30],
            "max_attempts": 3,
            "window_s": 900,
            "retry_after_give_up_s": 3600,
            **kw,
        }
    )
    return Recovery(cfg, clock)


def attempt(r: Recovery, clock: FakeClock) -> None:
    d = r.decide(health(clock))
    assert d.action is Action.RESTART, d
    r.begin()
    r.end()


def test_healthy_target_needs_nothing(clock: FakeClock) -> None:
    r = policy(clock)
    assert (
        r.decide(health(clock, status=Status.PASS, active=ActiveState.ACTIVE, sub="running")).action
        is Action.NONE
    )
    assert r.describe() == "idle"


def test_first_restart_is_immediate_then_backoff(clock: FakeClock) -> None:
    r = policy(clock)
    d = r.decide(health(clock))
    assert (d.action, d.attempt, d.max_attempts) == (Action.RESTART, 1, 3)
    r.begin()
    assert r.decide(health(clock)).action is Action.NONE  # one action at a time
    assert r.describe() == "restarting (attempt 1/3)"
    r.end()
    clock.advance(4)
    d = r.decide(health(clock))
    assert (d.action, d.wait_s) == (Action.WAIT, 6.0)
    assert r.describe(d) == "waiting 6s (attempt 2/3 next)"
    clock.advance(6)
    assert r.decide(health(clock)).action is Action.RESTART


def test_gives_up_after_max_attempts_in_window_then_slow_retry(clock: FakeClock) -> None:
    r = policy(clock)
    attempt(r, clock)
    clock.advance(10)
    attempt(r, clock)
    clock.advance(30)
    attempt(r, clock)
    d = r.decide(health(clock))
    assert d.action is Action.GIVE_UP
    assert d.reason == "3 attempts in 900 s did not help"
    r.give_up()
    assert r.gave_up
    assert r.describe().startswith("gave up until ")
    clock.advance(3599)
    assert r.decide(health(clock)).action is Action.NONE
    clock.advance(1)
    assert r.decide(health(clock)).action is Action.RESTART  # one slow retry
    r.begin()
    r.end()
    assert r.decide(health(clock)).action is Action.GIVE_UP  # still failing: give up again


def test_attempts_outside_the_window_are_forgotten(clock: FakeClock) -> None:
    r = policy(clock, window_s=60, backoff_s=[0])
    attempt(r, clock)
    attempt(r, clock)
    clock.advance(61)
    attempt(r, clock)
    attempt(r, clock)
    assert r.decide(health(clock)).action is Action.RESTART  # only 2 within the window


def test_never_fights_systemds_own_restart(clock: FakeClock) -> None:
    r = policy(clock)
    d = r.decide(health(clock, active=ActiveState.ACTIVATING, sub="auto-restart"))
    assert d.action is Action.WAIT
    assert d.reason == "systemd is restarting it (Restart=)"
    assert (
        r.decide(health(clock, active=ActiveState.DEACTIVATING, sub="stop")).action is Action.WAIT
    )


def test_start_limit_hit_resets_then_starts(clock: FakeClock) -> None:
    r = policy(clock)
    assert r.decide(health(clock, result="start-limit-hit")).action is Action.RESET_START


def test_missing_unit_is_not_restarted(clock: FakeClock) -> None:
    h = health(clock)
    assert h.unit_state is not None
    h = replace(h, unit_state=replace(h.unit_state, load_state="not-found"))
    assert policy(clock).decide(h).action is Action.NONE


def test_disabled(clock: FakeClock) -> None:
    r = policy(clock, enabled=False)
    assert r.decide(health(clock)).action is Action.NONE
    assert r.describe() == "disabled"


def test_backoff_counts_from_when_the_failure_began(clock: FakeClock) -> None:
    r = policy(clock, backoff_s=[5, 10])
    d = r.decide(health(clock, since=clock.time() - 2))
    assert (d.action, d.wait_s) == (Action.WAIT, 3.0)


def test_manual_reset_allows_an_immediate_attempt(clock: FakeClock) -> None:
    r = policy(clock, max_attempts=1)
    attempt(r, clock)
    assert r.decide(health(clock)).action is Action.GIVE_UP
    r.give_up()
    r.reset()
    assert not r.gave_up
    assert r.decide(health(clock)).action is Action.RESTART


def test_config_requires_restart_action() -> None:
    with pytest.raises(ValueError, match='only adds to "restart"'):
        schema.RecoveryConfig(actions=["free-port"])


def test_export_restore_keeps_attempts_and_give_up_across_a_restart(clock: FakeClock) -> None:
    r = policy(clock)
    attempt(r, clock)
    clock.advance(10)
    attempt(r, clock)
    clock.advance(30)
    attempt(r, clock)
    r.give_up()
    saved = r.export()
    later = FakeClock(start=clock.time() + 5)  # a new process: a new monotonic origin
    fresh = Recovery(RecoveryConfig(), later)
    fresh.restore(saved)
    assert fresh.gave_up
    assert fresh.describe() == r.describe()
    assert fresh.decide(health(later)).action is Action.NONE
    broken = Recovery(RecoveryConfig(), later)
    broken.restore({"attempts": "nonsense"})
    assert not broken.gave_up


def test_export_is_stable_while_nothing_happens(clock: FakeClock) -> None:
    # The state file is rewritten only when its content changes: an export recomputed from
    # two clocks read at slightly different moments changed at every pass.
    r = policy(clock)
    attempt(r, clock)
    first = r.export()
    clock.advance(5)
    clock.step_wall(0.0003)
    assert r.export() == first


def test_a_unit_with_a_job_queued_is_left_to_systemd(clock: FakeClock) -> None:
    h = health(clock)
    assert h.unit_state is not None
    between = replace(h.unit_state, active_state=ActiveState.INACTIVE, sub_state="dead", job_id=7)
    d = policy(clock).decide(replace(h, unit_state=between))
    assert d.action is Action.WAIT
    assert "job 7" in d.reason


def test_a_warning_never_triggers_recovery(clock: FakeClock) -> None:
    r = policy(clock)
    assert r.decide(health(clock, status=Status.WARN)).action is Action.NONE


def test_a_host_target_runs_its_command_counted_like_restarts(clock: FakeClock) -> None:
    r = policy(clock, actions=["run"], run=["/usr/sbin/logrotate", "-f"], max_attempts=2)
    host = replace(health(clock), unit=None, unit_state=None, output="disk: / 95% used")
    d = r.decide(host)
    assert (d.action, d.attempt, d.reason) == (Action.RUN, 1, "disk: / 95% used")
    r.begin()
    assert r.describe() == "running the cure (attempt 1/2)"
    r.end()
    clock.advance(10)
    assert r.decide(host).action is Action.RUN  # after the 10 s backoff
    r.begin()
    r.end()
    assert r.decide(host).action is Action.GIVE_UP


def test_a_unit_target_whose_cure_is_a_command_still_waits_for_systemd(clock: FakeClock) -> None:
    r = policy(clock, actions=["run"], run=["/bin/true"])
    starting = health(clock, active=ActiveState.ACTIVATING, sub="auto-restart")
    assert r.decide(starting).action is Action.WAIT
    assert r.decide(health(clock, active=ActiveState.ACTIVE, sub="running")).action is Action.RUN


def given_up_until_the_slow_retry(clock: FakeClock) -> Recovery:
    """Every attempt used, given up, and an hour later: the slow retry is due."""
    r = policy(clock)
    for wait in (10, 30, 0):
        attempt(r, clock)
        clock.advance(wait)
    r.give_up()
    clock.advance(3600)
    return r


def test_a_slow_retry_that_worked_ends_slow_retry_mode(clock: FakeClock) -> None:
    r = given_up_until_the_slow_retry(clock)
    attempt(r, clock)  # the slow retry, and it works: the target passes again
    assert r.decide(health(clock, status=Status.PASS, active=ActiveState.ACTIVE)).action is (
        Action.NONE
    )
    clock.advance(60)  # fails again, well within window_s of the slow retry
    d = r.decide(health(clock))
    assert d.action is Action.RESTART  # a second attempt in the window, not a give-up
    assert d.attempt == 2


def test_a_slow_retry_whose_job_is_done_ends_slow_retry_mode_at_once(clock: FakeClock) -> None:
    r = given_up_until_the_slow_retry(clock)
    assert r.decide(health(clock)).action is Action.RESTART  # the slow retry
    r.begin()
    r.end(restarted=True)
    clock.advance(1)  # killed again before any probe ran: no healthy pass seen in between
    d = r.decide(health(clock))
    assert d.action is not Action.GIVE_UP
