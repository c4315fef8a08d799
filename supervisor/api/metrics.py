"""Prometheus metrics: a private registry and collectors over what is in memory.

A scrape does no I/O: it reads the last snapshot, the last self-sample and the counts kept
here. Counts are counters named `_total`, shares are ratios (0..1), and no `_created` series
is exported. Every configured target and probe type has its series from the start (counts at
zero), so `rate()` draws 0 instead of "no data". The names 0.1.0 used are still exported for
one release, their HELP starting with DEPRECATED and naming the replacement (`_deprecated`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from supervisor.api.counts import FromMemory, ObservedCollector, deprecated
from supervisor.api.exposition import CounterMetricFamily, GaugeMetricFamily, Metric, Registry
from supervisor.api.exposition import render as exposition
from supervisor.api.tally import DaemonFacts, Observed
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


def _people_metrics() -> tuple[GaugeMetricFamily, ...]:
    """What the people who run the box did: held, flapping, stopped on request (0 or 1)."""
    return (
        GaugeMetricFamily(
            "supervisor_target_held",
            "1 while a person holds the target (no recovery, no alerts)",
            labels=["target"],
        ),
        GaugeMetricFamily(
            "supervisor_target_flapping",
            "1 while the target keeps failing and recovering (flap_count within flap_window_s)",
            labels=["target"],
        ),
        GaugeMetricFamily(
            "supervisor_target_stopped_on_request",
            "1 while the target's unit is stopped because someone asked systemd to stop it",
            labels=["target"],
        ),
    )


class SnapshotCollector(FromMemory):
    """Per-target gauges and our own footprint, from memory."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        stats: Callable[[], SelfStats],
        clock: Clock,
        facts: Callable[[], DaemonFacts] = DaemonFacts,
    ) -> None:
        super().__init__(snapshot)
        self._stats = stats
        self._clock = clock
        self.facts = facts  # likewise

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family built from the current snapshot."""
        snap = self.snapshot()
        facts = self.facts()
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
        restarts = CounterMetricFamily(
            "supervisor_unit_restarts",  # exported as supervisor_unit_restarts_total
            "restarts of the unit by systemd (its NRestarts; resets when the unit is reloaded)",
            labels=["target"],
        )
        restarts_old = deprecated(
            "supervisor_unit_restarts",
            "supervisor_unit_restarts_total",
            "systemd's NRestarts for the unit",
            ["target"],
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
        people = _people_metrics()
        blocked = GaugeMetricFamily(
            "supervisor_target_blocked",
            '1 while a target it needs (`by`, the root cause) is down; 0 with by="" otherwise',
            labels=["target", "by"],
        )
        for t in snap.targets:
            blocked.add_metric([t.name, t.blocked_by or ""], 0.0 if t.blocked_by is None else 1.0)
            info.add_metric([t.name, t.unit or "", str(t.critical).lower()], 1.0)
            for family, on in zip(people, (t.hold, t.flapping, t.stopped_at), strict=True):
                family.add_metric([t.name], 0.0 if on is None else 1.0)
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
                restarts_old.add_metric([t.name], float(unit.n_restarts))
        yield from (info, status, up, active, restarts, restarts_old, age, gave_up, *people)
        yield blocked
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
            "supervisor_budget_cpu_ratio",
            "the supervisor's own CPU budget, share of one core averaged ([budget] cpu_percent)",
            value=budget.cpu_percent / 100,
        )
        old = deprecated(
            "supervisor_budget_cpu_percent",
            "supervisor_budget_cpu_ratio",
            "the supervisor's own CPU budget, % of one core averaged",
        )
        old.add_metric([], budget.cpu_percent)
        yield old
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
        self.registry = Registry()
        self._seen = Observed()
        self._gauges = SnapshotCollector(snapshot, stats, clock, facts)
        self._counts = ObservedCollector(self._seen, snapshot)
        self.registry.register(self._gauges)
        self.registry.register(self._counts)

    def use(self, snapshot: Callable[[], Snapshot], facts: Callable[[], DaemonFacts]) -> None:
        """Read these from now on (a reload's new fleet); what was counted stays."""
        self._gauges.snapshot = self._counts.snapshot = snapshot
        self._gauges.facts = facts

    def observe_load(self, host_cpu_percent: float, host_memory_percent: float) -> None:
        """Keep the host's load as the breaker saw it."""
        self._seen.load(host_cpu_percent, host_memory_percent)

    def observe_breaker(self, is_open: bool, trips: int) -> None:
        """Breaker state and how often it has tripped."""
        self._seen.breaker(is_open, trips)

    def observe_recovery(self, target: str, action: str, result: str) -> None:
        """Count one recovery action and how it ended."""
        self._seen.recovery(target, action, result)

    def observe_probe(self, result: ProbeResult) -> None:
        """Count a probe run and keep the figures it brought."""
        self._seen.probe(result)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything."""
        return exposition(self.registry.collect())
