"""Whether failures are being handled: marked by the events that handle them, for 30 s."""

from __future__ import annotations

from supervisor.app.dispatch import Dispatcher
from supervisor.app.subscribers import to_activity
from supervisor.guard.activity import HANDLING_S, Activity
from supervisor.happenings import (
    AlertQueued,
    BreakerChanged,
    BusConnected,
    RecoveryStarted,
    Repair,
    Step,
)
from tests.clock import FakeClock


def test_handling_lasts_the_window_after_the_last_mark() -> None:
    clock = FakeClock()
    activity = Activity(clock)
    assert not activity.handling()  # nothing handled yet
    activity.mark()
    clock.advance(HANDLING_S - 0.1)
    assert activity.handling()
    activity.mark()  # another failure: the window starts again
    clock.advance(HANDLING_S - 0.1)
    assert activity.handling()
    clock.advance(0.1)
    assert not activity.handling()


def test_recovery_and_alerts_mark_it_the_breaker_and_the_bus_do_not() -> None:
    clock = FakeClock()
    activity = Activity(clock)
    events = Dispatcher()
    events.subscribe(to_activity(activity))
    events.emit(BreakerChanged(True, 1, "breaker open: own CPU 3.3% > budget 1%", "own CPU"))
    events.emit(BusConnected())
    assert not activity.handling()
    events.emit(RecoveryStarted("trader", Repair((Step.RESTART,)), 1, 3, "heartbeat: 6 s old"))
    assert activity.handling()
    clock.advance(HANDLING_S)
    assert not activity.handling()
    events.emit(AlertQueued("supervisor", "warning", "open", False, "own CPU 3.3%", ""))
    assert not activity.handling()  # the supervisor's own alert is no target's failure
    events.emit(AlertQueued("trader", "critical", "failing", False, "unit failed", "1/3"))
    assert activity.handling()
