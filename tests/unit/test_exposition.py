"""/metrics is written by our own few lines: byte for byte what prometheus_client's
`generate_latest` writes for the same families (it stays a test dependency to say so)."""

from __future__ import annotations

import math
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric as TheirMetric
from prometheus_client.utils import floatToGoString

from supervisor.api import exposition
from supervisor.api.exposition import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from supervisor.api.metrics import Metrics
from supervisor.api.tally import DaemonFacts
from supervisor.model import ActiveState, ProbeResult, SelfStats, Status, UnitState
from supervisor.watch.health import HealthModel, ProbeTrack, TargetSpec
from tests.clock import FakeClock


class Theirs:
    """The same families as prometheus_client's, for its `generate_latest`."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[TheirMetric]:
        out = []
        for ours in self._families:
            theirs = TheirMetric(ours.name, ours.documentation, ours.type)
            for s in ours.samples:
                theirs.add_sample(s.name, s.labels, s.value)
            out.append(theirs)
        return out


def same_as_prometheus_client(families: list[Metric]) -> bytes:
    ours = exposition.render(families)
    assert ours == generate_latest(Theirs(families))
    return ours


def test_the_daemons_metrics_are_written_as_prometheus_client_wrote_them() -> None:
    model = HealthModel(
        [TargetSpec("trader", "trader.service", critical=True), TargetSpec("dash", None)],
        FakeClock(),
    )
    model.apply_unit(
        "trader", UnitState(unit="trader.service", active_state=ActiveState.ACTIVE, n_restarts=3)
    )
    model.add_probe("trader", "mem", "resources", ProbeTrack())
    model.add_probe("dash", "http", "http", ProbeTrack())
    stats = SelfStats(cpu_seconds=1.5, rss_bytes=47_000_000, uptime_s=12345.678)
    facts = DaemonFacts(gave_up=frozenset({"trader"}), outbox_messages=2, outbox_dropped=1)
    metrics = Metrics(model.snapshot, lambda: stats, FakeClock(), lambda: facts)
    metrics.observe_probe(ProbeResult("dash", "http", "http", Status.FAIL, "timeout", 2.0))
    metrics.observe_probe(ProbeResult("dash", "http", "http", Status.PASS, "ok", 0.004))
    metrics.observe_recovery("trader", "restart", "done")
    metrics.observe_breaker(True, 1)
    metrics.observe_load(12.5, 61.25)
    text = same_as_prometheus_client(list(metrics.registry.collect())).decode()
    assert "supervisor_probe_duration_seconds_bucket{" in text
    assert 'supervisor_unit_restarts_total{target="trader"} 3.0\n' in text
    assert "supervisor_resident_memory_bytes 4.7e+07\n" in text
    assert "_created" not in text


def test_labels_and_help_are_escaped_as_prometheus_client_escaped_them() -> None:
    """A plugin's perfdata label is the check's own text: quotes, backslashes, newlines."""
    gauge = GaugeMetricFamily("x_ratio", 'help with \\ and\na "quote"', labels=["label"])
    for odd in ('a "b"', "c\\d", "e\nf", "ünï", ""):
        gauge.add_metric([odd], 0.5)
    counter = CounterMetricFamily("y_total", "counted", value=7)
    histogram = HistogramMetricFamily("z_seconds", "timed", labels=["t"])
    histogram.add_metric(["a"], [("0.1", 1.0), ("1.0", 2.0), ("+Inf", 3.0)], 1.25)
    text = same_as_prometheus_client([gauge, counter, histogram]).decode()
    assert 'x_ratio{label="a \\"b\\""} 0.5\n' in text
    assert "# TYPE y_total counter\ny_total 7.0\n" in text
    assert 'z_seconds_count{t="a"} 3.0\nz_seconds_sum{t="a"} 1.25\n' in text


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**63), 2**63))
def test_values_are_written_as_go_writes_them(value: float) -> None:
    assert exposition.go_float(value) == floatToGoString(value)  # type: ignore[no-untyped-call]


def test_special_values() -> None:
    assert [exposition.go_float(v) for v in (math.inf, -math.inf, math.nan, 0, 1e16)] == [
        "+Inf",
        "-Inf",
        "NaN",
        "0.0",
        "1e+16",
    ]


def test_the_daemon_does_not_load_prometheus_client() -> None:
    """Its import cost (1.1 MB of RSS, with http.server, wsgiref and socketserver) is gone."""
    probe = "import sys, supervisor.app.daemon; print(sorted(m for m in sys.modules if m in BAD))"
    bad = "BAD = {'prometheus_client', 'http.server', 'wsgiref', 'socketserver'}; "
    run = subprocess.run(
        [sys.executable, "-c", bad + probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
