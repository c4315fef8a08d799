"""The part of /metrics that counts: what the daemon observed beyond the snapshot (probe runs
and failures, recovery actions, the host's load and the breaker, units' resources), with a
series for every configured target and probe type from the start; and what both collectors
share (the snapshot read at each scrape, the names 0.1.0 used kept one more release). No I/O:
a scrape reads what is in memory (`supervisor.api.metrics` holds the registry)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from supervisor.api.exposition import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from supervisor.api.tally import BUCKETS, INF, Observed, ProbeCounts
from supervisor.model import Snapshot

NAN = float("nan")  # a gauge of a configured target not measured yet: no figure, not zero
REMOVED_IN = "0.3.0"  # the release that drops the names 0.1.0 used


def deprecated(
    name: str, replacement: str, words: str, labels: list[str] | None = None
) -> GaugeMetricFamily:
    """A 0.1.0 name kept for one release: a gauge whose HELP says what replaces it."""
    return GaugeMetricFamily(
        name, f"DEPRECATED, removed in {REMOVED_IN}: use {replacement}. {words}", labels=labels
    )


class FromMemory:
    """A collector over what is in memory: the snapshot in force, read at each scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.snapshot = snapshot  # a reload hands the new fleet's (`Metrics.use`)


class ObservedCollector(FromMemory):
    """Counts and last readings, with a series for every configured target and probe type
    from the start (the snapshot says what is configured)."""

    def __init__(self, observed: Observed, snapshot: Callable[[], Snapshot]) -> None:
        super().__init__(snapshot)
        self._seen = observed

    def collect(self) -> Iterator[Metric]:
        """Probe counts, recovery actions, host load, the breaker, units' resources."""
        snap = self.snapshot()
        yield from self._probe_counts(snap)
        recoveries = CounterMetricFamily(
            "supervisor_recovery_actions",
            "recovery actions by target, action and result",
            labels=["target", "action", "result"],
        )
        for labels, count in sorted(self._seen.recoveries.items()):
            recoveries.add_metric(list(labels), float(count))
        yield recoveries
        yield from self._host_and_breaker()
        yield from self._unit_resources(snap)

    def _probe_counts(self, snap: Snapshot) -> Iterator[Metric]:
        labels = ["target", "type"]
        runs = CounterMetricFamily("supervisor_probe_runs", "probes run", labels=labels)
        failures = CounterMetricFamily("supervisor_probe_failures", "probes failed", labels=labels)
        duration = HistogramMetricFamily(
            "supervisor_probe_duration_seconds", "time a probe took", labels=labels
        )
        keys = set(self._seen.probes) | {(t.name, p.kind) for t in snap.targets for p in t.probes}
        for key in sorted(keys):
            c = self._seen.probes.get(key) or ProbeCounts()
            runs.add_metric(list(key), float(c.runs))
            failures.add_metric(list(key), float(c.failures))
            buckets = [
                ("+Inf" if b == INF else repr(float(b)), float(n))
                for b, n in zip(BUCKETS, c.buckets, strict=True)
            ]
            duration.add_metric(list(key), buckets, c.duration_sum)
        yield from (runs, failures, duration)

    def _host_and_breaker(self) -> Iterator[Metric]:
        seen = self._seen
        for what, percent in (("cpu", seen.host_cpu_percent), ("memory", seen.host_memory_percent)):
            words = "CPU busy" if what == "cpu" else "memory in use"
            yield GaugeMetricFamily(
                f"supervisor_host_{what}_ratio", f"system-wide {words}, 0..1", value=percent / 100
            )
            old = deprecated(
                f"supervisor_host_{what}_percent", f"supervisor_host_{what}_ratio", words
            )
            old.add_metric([], percent)
            yield old
        yield GaugeMetricFamily(
            "supervisor_breaker_open",
            "1 while the breaker is open (probes paused)",
            value=1.0 if seen.breaker_open else 0.0,
        )
        yield CounterMetricFamily(
            "supervisor_breaker_trips", "times the breaker tripped since start",
            value=float(seen.breaker_trips),
        )  # fmt: skip
        old = deprecated(
            "supervisor_breaker_trips", "supervisor_breaker_trips_total", "times it tripped"
        )
        old.add_metric([], float(seen.breaker_trips))
        yield old

    def _unit_resources(self, snap: Snapshot) -> Iterator[Metric]:
        """For every target with a resources probe: NaN until its first reading."""
        memory = GaugeMetricFamily(
            "supervisor_unit_memory_bytes",
            "the unit's memory (resources probe)",
            labels=["target"],
        )
        cpu = GaugeMetricFamily(
            "supervisor_unit_cpu_ratio",
            "the unit's CPU, share of one core over the probe period (resources probe)",
            labels=["target"],
        )
        cpu_old = deprecated(
            "supervisor_unit_cpu_percent",
            "supervisor_unit_cpu_ratio",
            "the unit's CPU, % of one core",
            ["target"],
        )
        seen = self._seen
        names = {t.name for t in snap.targets if any(p.kind == "resources" for p in t.probes)}
        for name in sorted(names | set(seen.unit_memory_bytes) | set(seen.unit_cpu_percent)):
            memory.add_metric([name], seen.unit_memory_bytes.get(name, NAN))
            percent = seen.unit_cpu_percent.get(name, NAN)
            cpu.add_metric([name], percent / 100)
            cpu_old.add_metric([name], percent)
        yield from (memory, cpu, cpu_old)
