"""Prometheus metrics: a private registry and a collector over the in-memory snapshot.

A scrape does no I/O: it reads the last snapshot and the last self-sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from supervisor.config import BudgetConfig
from supervisor.model import ActiveState, Clock, ProbeResult, SelfStats, Snapshot, Status

_STATUSES = (Status.PASS, Status.WARN, Status.FAIL, Status.UNKNOWN)
_ACTIVE = (
    ActiveState.ACTIVE,
    ActiveState.RELOADING,
    ActiveState.INACTIVE,
    ActiveState.FAILED,
    ActiveState.ACTIVATING,
    ActiveState.DEACTIVATING,
)
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DaemonFacts:
    """What /metrics shows beyond the snapshot, read from the daemon's memory at scrape time."""

    gave_up: frozenset[str] = frozenset()  # targets whose automatic recovery is suspended
    outbox_messages: int = 0  # alerts waiting for delivery
    outbox_oldest: float | None = None  # wall clock of the oldest of them
    outbox_dropped: int = 0  # alerts dropped because the outbox was full
    incidents_open: int = 0  # incidents the alert policy holds open (failing, warn, breaker)
    budget: BudgetConfig = field(default_factory=BudgetConfig)


class SnapshotCollector(Collector):
    """Per-target gauges and our own footprint, from memory."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        stats: Callable[[], SelfStats],
        clock: Clock,
        facts: Callable[[], DaemonFacts] = DaemonFacts,
    ) -> None:
        self._snapshot = snapshot
        self._stats = stats
        self._clock = clock
        self._facts = facts

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not read a snapshot that may not exist yet."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family built from the current snapshot."""
        snap = self._snapshot()
        facts = self._facts()
        now = self._clock.time()
        info = GaugeMetricFamily(
            "supervisor_target_info",
            "1 for every configured target, with its unit and whether it is critical",
            labels=["target", "unit", "critical"],
        )
        status = GaugeMetricFamily(
            "supervisor_target_status",
            "1 for the target's current status",
            labels=["target", "status"],
        )
        up = GaugeMetricFamily("supervisor_target_up", "1 if the target passes", labels=["target"])
        active = GaugeMetricFamily(
            "supervisor_unit_active_state",
            "1 for the unit's current ActiveState",
            labels=["target", "state"],
        )
        restarts = GaugeMetricFamily(
            "supervisor_unit_restarts", "systemd's NRestarts for the unit", labels=["target"]
        )
        age = GaugeMetricFamily(
            "supervisor_target_status_age_seconds",
            "seconds since the target's status last changed",
            labels=["target"],
        )
        gave_up = GaugeMetricFamily(
            "supervisor_recovery_gave_up",
            "1 while automatic recovery of the target is suspended (gave up; a slow retry follows)",
            labels=["target"],
        )
        for t in snap.targets:
            info.add_metric([t.name, t.unit or "", str(t.critical).lower()], 1.0)
            gave_up.add_metric([t.name], 1.0 if t.name in facts.gave_up else 0.0)
            for s in _STATUSES:
                status.add_metric([t.name, s.value], 1.0 if t.status is s else 0.0)
            up.add_metric([t.name], 1.0 if t.status is Status.PASS else 0.0)
            age.add_metric([t.name], max(0.0, now - t.since))
            unit = t.unit_state
            if unit is not None:
                for a in _ACTIVE:
                    active.add_metric([t.name, a.value], 1.0 if unit.active_state is a else 0.0)
                restarts.add_metric([t.name], float(unit.n_restarts))
        yield from (info, status, up, active, restarts, age, gave_up)
        overall = GaugeMetricFamily(
            "supervisor_status", "1 for the overall status", labels=["status"]
        )
        for s in _STATUSES:
            overall.add_metric([s.value], 1.0 if snap.status is s else 0.0)
        yield overall
        yield from _probe_metrics(snap)
        yield from self._alert_metrics(facts, now)
        yield from self._self_metrics(facts.budget)

    @staticmethod
    def _alert_metrics(facts: DaemonFacts, now: float) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "supervisor_alert_outbox_messages",
            "alerts waiting in the outbox for delivery to Telegram",
            value=float(facts.outbox_messages),
        )
        oldest = facts.outbox_oldest
        yield GaugeMetricFamily(
            "supervisor_alert_outbox_oldest_age_seconds",
            "age of the oldest undelivered alert (0 when the outbox is empty)",
            value=0.0 if oldest is None else max(0.0, now - oldest),
        )
        yield CounterMetricFamily(
            "supervisor_alert_outbox_dropped",
            "alerts dropped undelivered because the outbox was full",
            value=float(facts.outbox_dropped),
        )
        # Open until its "resolved" notice is decided: a target can pass again before its
        # probes have judged the new process, and this says the incident still waits for them.
        yield GaugeMetricFamily(
            "supervisor_alert_incidents_open",
            "incidents the alert policy holds open (failing, warn or breaker), until resolved",
            value=float(facts.incidents_open),
        )

    def _self_metrics(self, budget: BudgetConfig) -> Iterator[Metric]:
        stats = self._stats()
        yield GaugeMetricFamily(
            "supervisor_uptime_seconds",
            "seconds since the supervisor started",
            value=stats.uptime_s,
        )
        yield GaugeMetricFamily(
            "supervisor_resident_memory_bytes",
            "the supervisor's own RSS",
            value=float(stats.rss_bytes),
        )
        yield CounterMetricFamily(
            "supervisor_cpu_seconds", "the supervisor's own CPU time", value=stats.cpu_seconds
        )
        yield GaugeMetricFamily(
            "supervisor_budget_cpu_percent",
            "the supervisor's own CPU budget, % of one core averaged ([budget] cpu_percent)",
            value=budget.cpu_percent,
        )
        yield GaugeMetricFamily(
            "supervisor_budget_memory_bytes",
            "the supervisor's own RSS budget: over it, it sheds caches ([budget] memory_mb)",
            value=budget.memory_mb * _MIB,
        )
        yield GaugeMetricFamily(
            "supervisor_budget_memory_hard_bytes",
            "the supervisor's hard RSS limit: over it, it exits 75 ([budget] memory_hard_mb)",
            value=budget.memory_hard_mb * _MIB,
        )


# Performance data (exec probes' plugins, host checks) by base unit: one family per unit.
_PERFDATA = {
    "": ("supervisor_probe_perfdata", "a figure a check reported (no unit, or a count)"),
    "seconds": ("supervisor_probe_perfdata_seconds", "a time a check reported"),
    "bytes": ("supervisor_probe_perfdata_bytes", "a size a check reported"),
    "ratio": ("supervisor_probe_perfdata_ratio", "a percentage a check reported, as 0..1"),
}


def _probe_metrics(snap: Snapshot) -> Iterator[Metric]:
    """Each probe's level, and the performance data of its last run in base units."""
    labels = ["target", "probe"]
    status = GaugeMetricFamily(
        "supervisor_probe_status", "1 for the probe's current level", labels=[*labels, "status"]
    )
    perf = {
        unit: GaugeMetricFamily(name, words, labels=[*labels, "label"])
        for unit, (name, words) in _PERFDATA.items()
    }
    for t in snap.targets:
        for p in t.probes:
            for s in _STATUSES:
                status.add_metric([t.name, p.probe, s.value], 1.0 if p.status is s else 0.0)
            for datum in p.perfdata:
                perf[datum.unit if datum.unit in perf else ""].add_metric(
                    [t.name, p.probe, datum.label], datum.value
                )
    yield status
    yield from perf.values()


class Metrics:
    """The registry and everything registered in it."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        stats: Callable[[], SelfStats],
        clock: Clock,
        facts: Callable[[], DaemonFacts] = DaemonFacts,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(SnapshotCollector(snapshot, stats, clock, facts))
        labels = ["target", "type"]
        reg = self.registry
        self._duration = Histogram(
            "supervisor_probe_duration_seconds",
            "time a probe took",
            labels,
            registry=reg,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
        )
        self._runs = Counter("supervisor_probe_runs", "probes run", labels, registry=reg)
        self._failures = Counter("supervisor_probe_failures", "probes failed", labels, registry=reg)
        self._recoveries = Counter(
            "supervisor_recovery_actions",
            "recovery actions by target, action and result",
            ["target", "action", "result"],
            registry=reg,
        )
        self._host_cpu = Gauge("supervisor_host_cpu_percent", "system-wide CPU busy", registry=reg)
        self._host_memory = Gauge(
            "supervisor_host_memory_percent", "system memory in use", registry=reg
        )
        self._breaker_open = Gauge(
            "supervisor_breaker_open", "1 while the breaker is open (probes paused)", registry=reg
        )
        self._breaker_trips = Gauge(
            "supervisor_breaker_trips", "times the breaker tripped since start", registry=reg
        )
        self._memory = Gauge(
            "supervisor_unit_memory_bytes",
            "the unit's memory (resources probe)",
            ["target"],
            registry=reg,
        )
        self._cpu = Gauge(
            "supervisor_unit_cpu_percent",
            "the unit's CPU, % of one core over the probe period (resources probe)",
            ["target"],
            registry=reg,
        )

    def observe_load(self, host_cpu_percent: float, host_memory_percent: float) -> None:
        """Keep the host's load as the breaker saw it."""
        self._host_cpu.set(host_cpu_percent)
        self._host_memory.set(host_memory_percent)

    def observe_breaker(self, is_open: bool, trips: int) -> None:
        """Breaker state and how often it has tripped."""
        self._breaker_open.set(1.0 if is_open else 0.0)
        self._breaker_trips.set(float(trips))

    def observe_recovery(self, target: str, action: str, result: str) -> None:
        """Count one recovery action and how it ended."""
        self._recoveries.labels(target, action, result).inc()

    def observe_probe(self, result: ProbeResult) -> None:
        """Count a probe run and keep the figures it brought."""
        self._duration.labels(result.target, result.kind).observe(result.duration_s)
        self._runs.labels(result.target, result.kind).inc()
        if not result.ok:
            self._failures.labels(result.target, result.kind).inc()
        for name, value in result.samples:
            if name == "memory_bytes":
                self._memory.labels(result.target).set(value)
            elif name == "cpu_percent":
                self._cpu.labels(result.target).set(value)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything."""
        return generate_latest(self.registry)
