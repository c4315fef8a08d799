"""Dependencies, pure: the graph, the config's depends_on, who is blocked by which root cause,
a stop systemd made through BindsTo= told from a person's, recovery waiting, and the reports."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from supervisor import config, graph
from supervisor.api import render
from supervisor.api.metrics import Metrics
from supervisor.config import DependenciesConfig, RecoveryConfig
from supervisor.errors import EXIT_CONFIG, ConfigError
from supervisor.model import ActiveState, SelfStats, Status, UnitState
from supervisor.recovery.policy import Action, Recovery
from supervisor.watch import deps
from supervisor.watch.health import HealthModel, TargetSpec
from tests.clock import FakeClock
from tests.unit.test_config import run_cli, write

NAMES = ("trader", "dashboard", "position-monitor")


def running(name: str, pid: int = 10, **kw: Any) -> UnitState:
    return UnitState(
        unit=f"{name}.service",
        active_state=ActiveState.ACTIVE,
        sub_state="running",
        main_pid=pid,
        **kw,
    )


def dead(name: str, **kw: Any) -> UnitState:
    return UnitState(
        unit=f"{name}.service",
        active_state=ActiveState.FAILED,
        sub_state="failed",
        result="signal",
        **kw,
    )


BINDS: dict[str, Any] = {
    "binds_to": ("trader.service",),
    "after": ("trader.service", "basic.target"),
}


# The dashboard as seen once systemd (or a person) stopped it: a stop job not ours.
STOPPED = UnitState(
    unit="dashboard.service",
    active_state=ActiveState.INACTIVE,
    sub_state="dead",
    operator_job="stop",
    **BINDS,
)


def fleet(clock: FakeClock) -> HealthModel:
    """trader; dashboard BindsTo=/After= trader (from systemd); position-monitor depends_on."""
    model = HealthModel([TargetSpec(n, f"{n}.service") for n in NAMES], clock)
    model.relations.declare({"position-monitor": ["trader"]})
    model.apply_unit("trader", running("trader"))
    model.apply_unit("dashboard", running("dashboard", 11, **BINDS))
    model.apply_unit("position-monitor", running("position-monitor", 12))
    return model


# -- the graph --------------------------------------------------------------------------------


def test_cycle_is_a_path_back_to_its_start() -> None:
    assert graph.cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert graph.cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) is None


def test_order_puts_every_dependency_first_and_keeps_the_rest() -> None:
    g = {"pm": ["dash"], "dash": ["trader"], "trader": [], "disk": []}
    assert graph.order(g, ["pm", "disk", "dash", "trader"]) == ["trader", "dash", "pm", "disk"]
    assert graph.needs(g, "pm") == ["dash", "trader"]
    assert graph.dependants(g, "trader") == ["pm", "dash"]


def test_systemd_relations_between_watched_units_only() -> None:
    names = {f"{n}.service": n for n in NAMES}
    needs, bound = deps.systemd_graphs(
        [running("dashboard", **BINDS), running("position-monitor", after=("trader.service",))],
        names,
    )
    assert needs == {"dashboard": ("trader",), "position-monitor": ("trader",)}
    assert bound == {"dashboard": ("trader",), "position-monitor": ()}


# -- the config ----------------------------------------------------------------------------------

TARGETS = """
[[targets]]
name = "trader"
unit = "trader.service"
{trader}
[[targets]]
name = "dashboard"
unit = "dashboard.service"
depends_on = ["trader"]
"""


def test_depends_on_is_read() -> None:
    cfg = config.parse(
        {
            "targets": [
                {"name": "trader", "unit": "trader.service"},
                {"name": "pm", "unit": "pm.service", "depends_on": ["trader"]},
            ]
        },
        env={},
    )
    assert cfg.targets[1].depends_on == ["trader"]


@pytest.mark.parametrize(
    ("depends_on", "problem"),
    [
        ('["dashboard"]', "dependency cycle: trader -> dashboard -> trader"),
        ('["tradr"]', "no target is named 'tradr' (known: trader, dashboard)"),
        ('["trader"]', "a target cannot depend on itself"),
    ],
)
def test_a_bad_depends_on_is_a_config_error_naming_file_field_and_why(
    tmp_path: Path, depends_on: str, problem: str
) -> None:
    path = write(tmp_path, TARGETS.format(trader=f"depends_on = {depends_on}"))
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.path == str(path)
    assert info.value.problems == [f"targets[0](trader).depends_on: {problem}"]


def test_check_config_with_a_cycle_exits_78_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, TARGETS.format(trader='depends_on = ["dashboard"]'))
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == EXIT_CONFIG
    assert str(path) in result.stderr
    assert "depends_on: dependency cycle: trader -> dashboard -> trader" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("freed_wait_s = 0", "Input should be greater than 0 (got 0)"),
        ("bound_stop_window_s = -1", "Input should be greater than 0 (got -1)"),
        ("resolved_wait_s = 30", "must be at least freed_wait_s"),
    ],
)
def test_a_bad_dependencies_setting_exits_78_naming_the_file_and_the_field(
    tmp_path: Path, setting: str, problem: str
) -> None:
    path = write(tmp_path, f"[dependencies]\n{setting}\n" + TARGETS.format(trader=""))
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == EXIT_CONFIG
    assert str(path) in result.stderr
    field = "resolved_wait_s" if "resolved" in setting else setting.split(" =", maxsplit=1)[0]
    assert f"dependencies.{field}: {problem}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_dependencies_defaults_are_the_documented_ones() -> None:
    data = {"targets": [{"name": "trader", "unit": "trader.service"}]}
    settings = config.parse(data, env={}).dependencies
    assert (settings.bound_stop_window_s, settings.freed_wait_s, settings.resolved_wait_s) == (
        5.0,
        60.0,
        120.0,
    )


# -- who is blocked ------------------------------------------------------------------------------


def test_while_the_root_is_down_its_dependants_are_blocked_with_their_own_status() -> None:
    clock = FakeClock()
    model = fleet(clock)
    model.apply_unit("trader", dead("trader"))
    snap = model.snapshot()
    trader, dashboard, pm = (snap.target(n) for n in NAMES)
    assert trader is not None and dashboard is not None and pm is not None
    assert trader.blocked_by is None
    assert trader.dependants == ("dashboard", "position-monitor")
    assert (dashboard.blocked_by, pm.blocked_by) == ("trader", "trader")
    assert pm.status is Status.PASS  # its own status stays visible


def test_the_root_cause_is_the_deepest_dependency_down() -> None:
    clock = FakeClock()
    model = fleet(clock)
    model.relations.declare({"position-monitor": ["dashboard"]})
    model.apply_unit("trader", dead("trader"))
    model.apply_unit("dashboard", dead("dashboard", **BINDS))
    assert model.target("position-monitor").blocked_by == "trader"
    model.apply_unit("trader", running("trader", 20))
    assert model.target("position-monitor").blocked_by == "dashboard"
    assert model.target("dashboard").blocked_by is None


def test_freed_when_the_root_is_back_and_kept_until_blocked_again() -> None:
    clock = FakeClock()
    model = fleet(clock)
    model.apply_unit("trader", dead("trader"))
    model.snapshot()
    clock.advance(3)
    model.apply_unit("trader", running("trader", 20))
    pm = model.target("position-monitor")
    assert (pm.blocked_by, pm.freed_from, pm.freed_at) == (None, "trader", clock.time())
    clock.advance(60)
    assert model.target("position-monitor").freed_from == "trader"
    model.apply_unit("trader", dead("trader"))
    pm = model.target("position-monitor")
    assert (pm.blocked_by, pm.freed_from) == ("trader", None)


def test_unknown_blocks_nobody() -> None:
    clock = FakeClock()
    model = fleet(clock)
    model.set_unknown("bus lost")
    assert all(t.blocked_by is None for t in model.snapshot().targets)


# -- a stop through BindsTo= is systemd's, not a person's ------------------------------------------


def test_a_stop_with_its_bound_unit_is_a_failure_blocked_by_the_root() -> None:
    clock = FakeClock()
    model = fleet(clock)
    model.apply_unit("trader", dead("trader"))
    model.apply_unit("dashboard", STOPPED)
    dashboard = model.target("dashboard")
    assert dashboard.stopped_at is None
    assert dashboard.status is Status.FAIL
    assert dashboard.blocked_by == "trader"


WINDOW_S = DependenciesConfig().bound_stop_window_s  # 5 s unless [dependencies] says


def test_a_stop_seen_after_the_root_is_up_again_still_went_down_with_it() -> None:
    clock = FakeClock()
    model = fleet(clock)
    now_usec = int(clock.time() * 1e6)
    model.apply_unit("trader", running("trader", 20, state_change_usec=now_usec))
    clock.advance(WINDOW_S / 2)
    model.apply_unit("dashboard", STOPPED)
    assert model.target("dashboard").stopped_at is None
    assert model.target("dashboard").status is Status.FAIL


@pytest.mark.parametrize(("window_s", "bound"), [(30.0, True), (10.0, False)])
def test_the_bound_stop_window_is_the_configured_one(window_s: float, bound: bool) -> None:
    clock = FakeClock()
    model = fleet(clock)
    model.relations.declare(
        {"position-monitor": ["trader"]}, DependenciesConfig(bound_stop_window_s=window_s)
    )
    now_usec = int(clock.time() * 1e6)
    model.apply_unit("trader", running("trader", 20, state_change_usec=now_usec))
    clock.advance(20)  # past the default 5 s: only a window of 30 s takes it for systemd's
    model.apply_unit("dashboard", STOPPED)
    assert (model.target("dashboard").stopped_at is None) is bound


def test_a_persons_stop_while_the_bound_unit_runs_stays_a_stop_on_request() -> None:
    clock = FakeClock()
    model = fleet(clock)
    clock.advance(WINDOW_S + 60)
    model.apply_unit("dashboard", STOPPED)
    assert model.target("dashboard").stopped_at == clock.time()
    assert model.target("dashboard").status is Status.WARN


# -- recovery -------------------------------------------------------------------------------------


def test_a_blocked_dependant_waits_and_is_restarted_once_its_root_is_back() -> None:
    clock = FakeClock()
    model = fleet(clock)
    recovery = Recovery(RecoveryConfig(), clock)
    model.apply_unit("trader", dead("trader"))
    model.apply_unit("dashboard", dead("dashboard", **BINDS))
    decision = recovery.decide(model.target("dashboard"))
    assert (decision.action, decision.reason) == (Action.WAIT, "blocked by trader")
    assert recovery.describe(decision) == "waiting: blocked by trader"
    model.apply_unit("trader", running("trader", 20))
    assert recovery.decide(model.target("dashboard")).action is Action.RESTART


def test_recovery_order_puts_the_root_first() -> None:
    model = fleet(FakeClock())
    assert model.relations.order(["position-monitor", "dashboard", "trader"]) == [
        "trader",
        "position-monitor",
        "dashboard",
    ]


def test_a_dependant_failing_on_its_own_is_recovered_as_before() -> None:
    clock = FakeClock()
    model = fleet(clock)
    model.apply_unit("dashboard", dead("dashboard", **BINDS))
    dashboard = model.target("dashboard")
    assert dashboard.blocked_by is None
    assert Recovery(RecoveryConfig(), clock).decide(dashboard).action is Action.RESTART


# -- reports ------------------------------------------------------------------------------------


def test_health_and_metrics_show_who_is_blocked_by_whom() -> None:
    clock = FakeClock()
    model = fleet(clock)
    model.apply_unit("trader", dead("trader"))
    doc = render.health_document(model.snapshot())
    checks = {c["componentId"]: c for entries in doc["checks"].values() for c in entries}
    assert checks["dashboard"]["blocked_by"] == "trader"
    assert checks["dashboard"]["status"] == "pass"
    assert checks["trader"]["blocked_by"] is None
    assert checks["trader"]["dependants"] == ["dashboard", "position-monitor"]
    text = Metrics(model.snapshot, SelfStats, clock).render().decode()
    assert 'supervisor_target_blocked{by="trader",target="dashboard"} 1.0' in text
    assert 'supervisor_target_blocked{by="",target="trader"} 0.0' in text


def test_a_reload_keeps_what_systemd_said_and_who_is_blocked() -> None:
    clock = FakeClock()
    old = fleet(clock)
    old.apply_unit("trader", dead("trader"))
    old.snapshot()
    new = HealthModel([TargetSpec(n, f"{n}.service") for n in NAMES], clock)
    new.carry_over(old)
    new.relations.declare({})  # depends_on dropped from the config
    assert new.relations.bound == {"dashboard": ("trader",), "trader": (), "position-monitor": ()}
    assert new.target("dashboard").blocked_by == "trader"
    assert new.target("position-monitor").blocked_by is None


def test_the_root_is_restarted_only_once_systemd_stopped_what_is_bound_to_it() -> None:
    """A restart of the trader reaches the units bound to it: one whose stop is still queued
    would be restarted with it, at once. Recovery waits for the stop (at most the window)."""
    clock = FakeClock()
    model = fleet(clock)
    model.apply_unit("trader", dead("trader"))
    stop_queued = running("dashboard", 11, job_id=7, **BINDS)
    model.apply_unit("dashboard", stop_queued)

    def stopping() -> str | None:
        return model.relations.stopping_with(model.target("trader"), model.snapshot().targets)

    assert stopping() == "dashboard"
    model.apply_unit("dashboard", replace(STOPPED, active_state=ActiveState.DEACTIVATING))
    assert stopping() == "dashboard"
    model.apply_unit("dashboard", dead("dashboard", **BINDS))
    assert stopping() is None  # stopped: the trader's restart no longer reaches it
    model.apply_unit("dashboard", replace(STOPPED, active_state=ActiveState.DEACTIVATING))
    clock.advance(WINDOW_S)
    assert stopping() is None  # a stop this slow is not waited for
    assert model.relations.stopping_with(model.target("dashboard"), ()) is None
