"""/metrics: what the fleet rules read beyond the snapshot, and promtool's lint on the output."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor.api.metrics import DaemonFacts, Metrics
from supervisor.config import BudgetConfig
from supervisor.model import ActiveState, ProbeResult, SelfStats, Status, UnitState
from supervisor.watch.health import HealthModel, TargetSpec
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
    assert value(text, "supervisor_budget_cpu_percent") == 2.5
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
