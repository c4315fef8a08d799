"""Shared fixtures of the HTTP tests: a real health model and real metrics over it."""

from __future__ import annotations

import pytest

from supervisor.api.metrics import Metrics
from supervisor.model import ActiveState, SelfStats, UnitState
from supervisor.watch.health import HealthModel, TargetSpec
from tests.clock import FakeClock


@pytest.fixture
def model() -> HealthModel:
    clock = FakeClock()
    m = HealthModel(
        [
            TargetSpec("trader", "trader.service", critical=True),
            TargetSpec("dashboard", "dashboard.service"),
        ],
        clock,
    )
    for name in ("trader", "dashboard"):
        m.apply_unit(
            name,
            UnitState(
                unit=f"{name}.service",
                active_state=ActiveState.ACTIVE,
                sub_state="running",
                main_pid=42,
                n_restarts=1,
            ),
        )
    return m


@pytest.fixture
def metrics(model: HealthModel) -> Metrics:
    stats = SelfStats(uptime_s=12.0, rss_bytes=30_000_000, cpu_seconds=0.5)
    return Metrics(model.snapshot, lambda: stats, FakeClock())
