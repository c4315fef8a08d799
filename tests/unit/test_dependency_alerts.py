"""One root cause, one alert: the alert policy over a real health model, with a fake clock.

trader; dashboard BindsTo= trader (from systemd); position-monitor depends_on trader.
"""

from __future__ import annotations

from typing import Any

from supervisor.alerts.policy import Alert, AlertPolicy, Severity, format_html
from supervisor.app.subscribers import history_record
from supervisor.config import AlertsConfig, DependenciesConfig
from supervisor.happenings import Blocked
from supervisor.history.events import Kind
from supervisor.model import ActiveState, Status, UnitState
from supervisor.times import utc_stamp
from supervisor.watch.health import HealthModel
from tests.clock import FakeClock
from tests.unit.test_dependencies import BINDS, dead, fleet, running

ROUND_S = 5.0
FREED_WAIT_S = DependenciesConfig().freed_wait_s  # 60 s unless [dependencies] says


def policy(clock: FakeClock, settings: DependenciesConfig | None = None) -> AlertPolicy:
    round_s = dict.fromkeys(("trader", "dashboard"), ROUND_S)
    return AlertPolicy(AlertsConfig(), clock, round_s, settings)


def observe(p: AlertPolicy, model: HealthModel) -> list[Alert]:
    """One pass as supervision makes it: dependants first, then the targets they need."""
    snap = model.snapshot()
    return [
        alert
        for t in sorted(snap.targets, key=lambda t: bool(t.dependants))
        for alert in p.observe(t, gave_up=False)
    ]


def rounds(p: AlertPolicy, model: HealthModel, clock: FakeClock, n: int) -> list[Alert]:
    sent = []
    for _ in range(n):
        sent += observe(p, model)
        clock.advance(ROUND_S)
    return sent


def trader_dies(model: HealthModel) -> None:
    model.apply_unit("trader", dead("trader"))
    model.apply_unit("dashboard", dead("dashboard", **BINDS))


def trader_back(
    clock: FakeClock, settings: DependenciesConfig | None = None
) -> tuple[HealthModel, AlertPolicy]:
    """The trader died, was alerted on and is back; its resolved notice waits for the rest."""
    model, p = fleet(clock), policy(clock, settings)
    trader_dies(model)
    rounds(p, model, clock, 4)
    model.apply_unit("trader", running("trader", 20))
    assert observe(p, model) == []  # the dashboard is not back yet: nothing resolved
    return model, p


def test_one_alert_names_the_root_and_lists_its_dependants() -> None:
    clock = FakeClock()
    model, p = fleet(clock), policy(clock)
    trader_dies(model)
    sent = rounds(p, model, clock, 10)
    assert [(a.target, a.severity) for a in sent] == [("trader", Severity.WARNING)]
    assert sent[0].dependants == ("dashboard", "position-monitor")
    text = format_html(sent[0], "box")
    assert "dependants affected: dashboard; position-monitor" in text
    assert set(p.incidents) == {"trader:health"}


def test_resolved_once_with_the_dependants_that_came_back_in_order() -> None:
    clock = FakeClock()
    model, p = trader_back(clock)
    monitor_back = f"back at {utc_stamp(clock.time())}"  # it never failed: back when freed
    dashboard = model.target("dashboard")
    assert (dashboard.blocked_by, dashboard.freed_from) == (None, "trader")
    clock.advance(2)
    model.apply_unit("dashboard", running("dashboard", 21, **BINDS))
    sent = observe(p, model)
    assert [(a.target, a.severity) for a in sent] == [("trader", Severity.RESOLVED)]
    back = f"back at {utc_stamp(clock.time())}"
    assert sent[0].dependants == (f"dashboard {back}", f"position-monitor {monitor_back}")
    assert "dependants: dashboard back at" in format_html(sent[0], "box")
    assert rounds(p, model, clock, 5) == []
    assert p.incidents == {}


def test_a_freed_dependant_that_fails_again_after_its_restart_is_its_own_incident() -> None:
    clock = FakeClock()
    model, p = trader_back(clock)
    assert rounds(p, model, clock, 2) == []  # freed: its restart comes first, then it is judged
    model.apply_unit("dashboard", running("dashboard", 21, **BINDS))  # restarted ...
    clock.advance(1)
    model.apply_unit("dashboard", dead("dashboard", **BINDS))  # ... and dead again
    failed_at = clock.time()
    sent = rounds(p, model, clock, 4)
    assert [(a.target, a.severity) for a in sent] == [
        ("dashboard", Severity.WARNING),
        ("trader", Severity.RESOLVED),
    ]
    assert sent[0].opened_at == failed_at
    assert sent[0].dependants == ()
    assert sent[1].dependants[0] == "dashboard still failing"
    assert sent[1].dependants[1].startswith("position-monitor back at")


def test_a_freed_dependant_that_never_comes_back_is_alerted_once_the_wait_is_over() -> None:
    clock = FakeClock()
    model, p = trader_back(clock)
    waited = rounds(p, model, clock, int(FREED_WAIT_S / ROUND_S))
    assert waited == []
    sent = rounds(p, model, clock, 2)
    assert [(a.target, a.severity) for a in sent] == [
        ("dashboard", Severity.WARNING),
        ("trader", Severity.RESOLVED),
    ]
    assert sent[1].dependants[0] == "dashboard still failing"


def test_a_dependant_failing_on_its_own_while_its_root_is_healthy_is_alerted_as_before() -> None:
    clock = FakeClock()
    model, p = fleet(clock), policy(clock)
    model.apply_unit("dashboard", dead("dashboard", **BINDS))
    assert model.target("dashboard").blocked_by is None
    sent = rounds(p, model, clock, 4)
    assert [(a.target, a.severity, a.dependants) for a in sent] == [
        ("dashboard", Severity.WARNING, ())
    ]
    model.apply_unit("dashboard", running("dashboard", 21, **BINDS))
    resolved = observe(p, model)
    assert [(a.target, a.severity, a.dependants) for a in resolved] == [
        ("dashboard", Severity.RESOLVED, ())
    ]


def test_a_blocked_dependant_that_fails_never_alerts_even_long_after() -> None:
    clock = FakeClock()
    model, p = fleet(clock), policy(clock)
    trader_dies(model)
    sent = rounds(p, model, clock, 400)  # past the cooldown: one reminder, all about trader
    assert {a.target for a in sent} == {"trader"}
    dashboard = model.target("dashboard")
    assert (dashboard.status, dashboard.blocked_by) == (Status.FAIL, "trader")


def test_history_keeps_blocked_and_freed_as_status_events() -> None:
    blocked = history_record(Blocked("dashboard", "trader", "trader"))
    freed = history_record(Blocked("dashboard", None, "trader"))
    assert blocked == (
        Kind.STATUS,
        "dashboard blocked by trader",
        "dashboard",
        {"blockedBy": "trader", "root": "trader"},
    )
    assert freed == (
        Kind.STATUS,
        "dashboard freed: trader is back",
        "dashboard",
        {"blockedBy": None, "root": "trader"},
    )


def test_a_root_that_fails_again_before_resolving_waits_for_its_dependants_afresh() -> None:
    clock = FakeClock()
    model, p = trader_back(clock)  # the position monitor is counted back, the dashboard not
    clock.advance(ROUND_S)
    trader_dies(model)
    assert rounds(p, model, clock, 3) == []  # the same incident: told once already
    model.apply_unit("trader", running("trader", 22))
    model.apply_unit("dashboard", running("dashboard", 23, **BINDS))
    back = f"back at {utc_stamp(clock.time())}"
    [resolved] = observe(p, model)
    assert resolved.severity is Severity.RESOLVED
    assert resolved.dependants == (f"dashboard {back}", f"position-monitor {back}")


def test_the_freed_wait_and_the_resolved_wait_are_the_configured_ones() -> None:
    clock = FakeClock()
    settings = DependenciesConfig(freed_wait_s=10, resolved_wait_s=15)
    model, p = trader_back(clock, settings)
    assert rounds(p, model, clock, 2) == []  # 10 s: the dashboard's wait is just over
    sent = rounds(p, model, clock, 1)
    assert [(a.target, a.severity) for a in sent] == [
        ("dashboard", Severity.WARNING),
        ("trader", Severity.RESOLVED),
    ]


def test_a_resolved_notice_waits_for_its_dependants_no_longer_than_configured() -> None:
    clock = FakeClock()
    model, p = trader_back(clock, DependenciesConfig(freed_wait_s=10, resolved_wait_s=30))
    starting = UnitState(
        unit="dashboard.service",
        active_state=ActiveState.ACTIVATING,
        sub_state="start",
        **BINDS,
    )
    model.apply_unit("dashboard", starting)  # neither back nor failing: not accounted for
    assert rounds(p, model, clock, 6) == []  # 30 s after the trader came back
    [resolved] = rounds(p, model, clock, 1)
    assert (resolved.target, resolved.severity) == ("trader", Severity.RESOLVED)
    assert resolved.dependants[0] == "dashboard not back yet"


# The position monitor as the sandbox's chain runs it: stopped with the trader, started after
# the dashboard (it needs both; the dashboard needs the trader).
CHAINED: dict[str, Any] = {
    "binds_to": ("trader.service",),
    "after": ("trader.service", "dashboard.service"),
}


def test_in_a_chain_each_dependant_is_freed_in_turn_and_the_one_notice_lists_both() -> None:
    clock = FakeClock()
    model, p = fleet(clock), policy(clock)
    model.apply_unit("position-monitor", running("position-monitor", 12, **CHAINED))
    trader_dies(model)
    model.apply_unit("position-monitor", dead("position-monitor", **CHAINED))
    [alert] = rounds(p, model, clock, 4)
    assert alert.dependants == ("dashboard", "position-monitor")
    model.apply_unit("trader", running("trader", 20))
    monitor = model.target("position-monitor")
    assert (monitor.blocked_by, model.target("dashboard").freed_from) == ("dashboard", "trader")
    assert rounds(p, model, clock, 1) == []
    model.apply_unit("dashboard", running("dashboard", 21, **BINDS))
    assert model.target("position-monitor").freed_from == "dashboard"
    dashboard_back = f"dashboard back at {utc_stamp(clock.time())}"
    assert rounds(p, model, clock, 1) == []  # the trader's notice waits for the monitor too
    model.apply_unit("position-monitor", running("position-monitor", 22, **CHAINED))
    [resolved] = observe(p, model)
    assert (resolved.target, resolved.severity) == ("trader", Severity.RESOLVED)
    monitor_back = f"position-monitor back at {utc_stamp(clock.time())}"
    assert resolved.dependants == (dashboard_back, monitor_back)
    assert rounds(p, model, clock, 3) == []
