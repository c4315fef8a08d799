"""What the daemon tells /metrics beyond the snapshot (probe counts and durations, recovery
actions, host load, the breaker, units' resources) and what it is asked at scrape time
(`DaemonFacts`), kept as plain numbers. Pure: the collectors in `metrics` export them."""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.config import BudgetConfig
from supervisor.model import ProbeResult

INF = float("inf")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, INF)


@dataclass(slots=True)
class ProbeCounts:
    """Runs, failures and durations of one (target, probe type)."""

    runs: int = 0
    failures: int = 0
    duration_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))  # cumulative

    def observe(self, ok: bool, duration_s: float) -> None:
        self.runs += 1
        self.failures += 0 if ok else 1
        self.duration_sum += duration_s
        for i, bound in enumerate(BUCKETS):
            if duration_s <= bound:
                self.buckets[i] += 1


@dataclass(slots=True)
class Observed:
    """What the daemon reported to /metrics beyond the snapshot, kept as plain numbers."""

    probes: dict[tuple[str, str], ProbeCounts] = field(default_factory=dict)
    recoveries: dict[tuple[str, str, str], int] = field(default_factory=dict)
    host_cpu_percent: float = 0.0
    host_memory_percent: float = 0.0
    breaker_open: bool = False
    breaker_trips: int = 0
    unit_memory_bytes: dict[str, float] = field(default_factory=dict)
    unit_cpu_percent: dict[str, float] = field(default_factory=dict)

    def load(self, host_cpu_percent: float, host_memory_percent: float) -> None:
        """The host's load as the breaker saw it."""
        self.host_cpu_percent = host_cpu_percent
        self.host_memory_percent = host_memory_percent

    def breaker(self, is_open: bool, trips: int) -> None:
        """The breaker's state and how often it has tripped."""
        self.breaker_open = is_open
        self.breaker_trips = trips

    def recovery(self, target: str, action: str, result: str) -> None:
        """One recovery action and how it ended."""
        key = (target, action, result)
        self.recoveries[key] = self.recoveries.get(key, 0) + 1

    def probe(self, result: ProbeResult) -> None:
        """A probe run counted, and the figures it brought kept."""
        counts = self.probes.setdefault((result.target, result.kind), ProbeCounts())
        counts.observe(result.ok, result.duration_s)
        for name, value in result.samples:
            if name == "memory_bytes":
                self.unit_memory_bytes[result.target] = value
            elif name == "cpu_percent":
                self.unit_cpu_percent[result.target] = value


@dataclass(frozen=True, slots=True)
class DaemonFacts:
    """What /metrics shows beyond the snapshot, read from the daemon's memory at scrape time."""

    gave_up: frozenset[str] = frozenset()  # targets whose automatic recovery is suspended
    outbox_messages: int = 0  # alerts waiting for delivery
    outbox_oldest: float | None = None  # wall clock of the oldest of them
    outbox_dropped: int = 0  # alerts dropped because the outbox was full
    incidents_open: int = 0  # incidents the alert policy holds open (failing, warn, breaker)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
