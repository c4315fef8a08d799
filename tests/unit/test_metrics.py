"""/metrics: what the fleet rules read beyond the snapshot, and promtool's lint on the output."""

from __future__ import annotations

import math
import re
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor.api.metrics import Metrics
from supervisor.api.tally import DaemonFacts
from supervisor.config import BudgetConfig
from supervisor.model import ActiveState, ProbeResult, SelfStats, Status, UnitState
from supervisor.watch.health import HealthModel, ProbeTrack, TargetSpec
from tests.clock import FakeClock

MIB = 1024 * 1024


@pytest.fixture
def model() -> HealthModel:
    m = HealthModel(
        [
            TargetSpec("trader", "trader.service", critical=True),
            TargetSpec("dashboard", "dashboard.service"),
        ],
        FakeClock(),
    )
    for name in ("trader", "dashboard"):
        m.apply_unit(name, UnitState(unit=f"{name}.service", active_state=ActiveState.ACTIVE))
    return m


def render(model: HealthModel, facts: DaemonFacts) -> str:
    clock = FakeClock()
    metrics = Metrics(model.snapshot, lambda: SelfStats(cpu_seconds=1.5), clock, lambda: facts)
    metrics.observe_probe(ProbeResult("dashboard", "http", "http", Status.FAIL, "timeout", 2.0))
    metrics.observe_recovery("trader", "restart", "done")
    metrics.observe_breaker(True, 1)
    return metrics.render().decode()


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of an exposition, parsed as Prometheus would."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def test_target_info_says_which_targets_are_critical(model: HealthModel) -> None:
    text = render(model, DaemonFacts())
    info = "supervisor_target_info"
    assert value(text, info, target="trader", unit="trader.service", critical="true") == 1
    assert value(text, info, target="dashboard", unit="dashboard.service", critical="false") == 1


def test_gave_up_per_target(model: HealthModel) -> None:
    text = render(model, DaemonFacts(gave_up=frozenset({"trader"})))
    assert value(text, "supervisor_recovery_gave_up", target="trader") == 1
    assert value(text, "supervisor_recovery_gave_up", target="dashboard") == 0


def test_outbox_backlog_and_its_age(model: HealthModel) -> None:
    now = FakeClock().time()
    facts = DaemonFacts(outbox_messages=3, outbox_oldest=now - 420.0, outbox_dropped=2)
    text = render(model, facts)
    assert value(text, "supervisor_alert_outbox_messages") == 3
    assert value(text, "supervisor_alert_outbox_oldest_age_seconds") == 420
    assert value(text, "supervisor_alert_outbox_dropped_total") == 2
    empty = render(model, DaemonFacts())
    assert value(empty, "supervisor_alert_outbox_messages") == 0
    assert value(empty, "supervisor_alert_outbox_oldest_age_seconds") == 0


def test_open_incidents(model: HealthModel) -> None:
    name = "supervisor_alert_incidents_open"
    assert value(render(model, DaemonFacts(incidents_open=2)), name) == 2
    assert value(render(model, DaemonFacts()), name) == 0


def test_budget_in_base_units(model: HealthModel) -> None:
    budget = BudgetConfig(cpu_percent=2.5, memory_mb=64, memory_hard_mb=128)
    text = render(model, DaemonFacts(budget=budget))
    assert value(text, "supervisor_budget_cpu_ratio") == 0.025
    assert value(text, "supervisor_budget_cpu_percent") == 2.5  # deprecated, one release
    assert value(text, "supervisor_budget_memory_bytes") == 64 * MIB
    assert value(text, "supervisor_budget_memory_hard_bytes") == 128 * MIB


def test_promtool_finds_nothing_to_complain_about(model: HealthModel) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    text = render(model, DaemonFacts(gave_up=frozenset({"trader"}), outbox_messages=1))
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def fresh(model: HealthModel) -> Metrics:
    """Metrics of a daemon that has observed nothing yet."""
    return Metrics(model.snapshot, SelfStats, FakeClock())


def test_every_configured_target_and_probe_type_has_its_series_before_any_probe(
    model: HealthModel,
) -> None:
    model.add_probe("dashboard", "http", "http", ProbeTrack())
    model.add_probe("dashboard", "port", "tcp", ProbeTrack())
    model.add_probe("trader", "mem", "resources", ProbeTrack())
    text = fresh(model).render().decode()
    for target, kind in (("dashboard", "http"), ("dashboard", "tcp"), ("trader", "resources")):
        labels = {"target": target, "type": kind}
        assert value(text, "supervisor_probe_runs_total", **labels) == 0
        assert value(text, "supervisor_probe_failures_total", **labels) == 0
        assert value(text, "supervisor_probe_duration_seconds_count", **labels) == 0
        assert value(text, "supervisor_probe_duration_seconds_bucket", le="+Inf", **labels) == 0
    # A gauge not measured yet has its series, without a made-up figure.
    memory = value(text, "supervisor_unit_memory_bytes", target="trader")
    assert memory is not None and math.isnan(memory)
    assert value(text, "supervisor_unit_memory_bytes", target="dashboard") is None  # no probe


def test_counts_are_counters_named_total_and_no_created_series(model: HealthModel) -> None:
    model.apply_unit(
        "trader",
        UnitState(unit="trader.service", active_state=ActiveState.ACTIVE, n_restarts=4),
    )
    text = render(model, DaemonFacts())
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    for name in (
        "supervisor_unit_restarts",
        "supervisor_breaker_trips",
        "supervisor_probe_runs",
        "supervisor_probe_failures",
        "supervisor_recovery_actions",
        "supervisor_cpu_seconds",
        "supervisor_alert_outbox_dropped",
    ):
        assert f"# TYPE {name}_total counter" in text, name
    assert value(text, "supervisor_unit_restarts_total", target="trader") == 4
    assert value(text, "supervisor_breaker_trips_total") == 1
    assert value(text, "supervisor_recovery_actions_total", target="trader", action="restart",
                 result="done") == 1  # fmt: skip
    assert "_created" not in text
    assert types["supervisor_probe_duration_seconds"] == "histogram"


def test_shares_are_ratios(model: HealthModel) -> None:
    metrics = fresh(model)
    metrics.observe_load(45.0, 80.0)
    metrics.observe_probe(
        ProbeResult("trader", "mem", "resources", Status.PASS, "ok", 0.01,
                    samples=(("memory_bytes", 5e6), ("cpu_percent", 12.5)))
    )  # fmt: skip
    text = metrics.render().decode()
    assert value(text, "supervisor_host_cpu_ratio") == 0.45
    assert value(text, "supervisor_host_memory_ratio") == 0.8
    assert value(text, "supervisor_unit_cpu_ratio", target="trader") == 0.125
    assert value(text, "supervisor_unit_memory_bytes", target="trader") == 5e6
    assert not [n for n in re.findall(r"^# TYPE (\S+)", text, re.M)
                if n.endswith("_percent") and n not in DEPRECATED]  # fmt: skip


# The 0.1.0 names kept for one release (0.2.0), and what replaces each.
DEPRECATED = {
    "supervisor_unit_restarts": "supervisor_unit_restarts_total",
    "supervisor_breaker_trips": "supervisor_breaker_trips_total",
    "supervisor_host_cpu_percent": "supervisor_host_cpu_ratio",
    "supervisor_host_memory_percent": "supervisor_host_memory_ratio",
    "supervisor_unit_cpu_percent": "supervisor_unit_cpu_ratio",
    "supervisor_budget_cpu_percent": "supervisor_budget_cpu_ratio",
}


def test_old_names_are_kept_one_release_with_a_deprecation_note(model: HealthModel) -> None:
    model.add_probe("trader", "mem", "resources", ProbeTrack())
    metrics = fresh(model)
    metrics.observe_load(45.0, 80.0)
    metrics.observe_breaker(False, 2)
    text = metrics.render().decode()
    for old, new in DEPRECATED.items():
        assert f"# HELP {old} DEPRECATED, removed in 0.3.0: use {new}." in text, old
        assert f"# TYPE {new} " in text, new
    assert value(text, "supervisor_host_cpu_percent") == 45.0
    assert value(text, "supervisor_breaker_trips") == 2
