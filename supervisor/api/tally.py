"""What the daemon tells /metrics beyond the snapshot (probe counts and durations, recovery
actions, host load, the breaker, units' resources), kept as plain numbers. Pure: the
collector in `metrics` exports them."""

from __future__ import annotations

from dataclasses import dataclass, field

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
