"""The recent probe results, per probe, in memory: enough for a strip, no write per probe."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from supervisor.model import ProbeResult

RING_SIZE = 100
_OUTPUT_CHARS = 200  # a failure's words are kept, cut short: the ring must stay small


@dataclass(frozen=True, slots=True)
class Sample:
    """One probe run."""

    time: float  # seconds since the epoch
    ok: bool
    latency_ms: float
    output: str = ""  # only for failures

    def document(self) -> dict[str, Any]:
        """As JSON: compact, since /history/{target} sends up to 100 per probe."""
        doc: dict[str, Any] = {"t": round(self.time, 3), "ok": self.ok, "ms": self.latency_ms}
        if self.output:
            doc["output"] = self.output
        return doc


class ProbeRing:
    """The last `size` results of every probe, keyed by (target, probe)."""

    def __init__(self, size: int = RING_SIZE) -> None:
        self._size = size
        self._rings: dict[tuple[str, str], deque[Sample]] = {}

    def add(self, result: ProbeResult, at: float) -> None:
        """Keep one result (the oldest falls off)."""
        key = (result.target, result.probe)
        ring = self._rings.get(key)
        if ring is None:
            ring = self._rings[key] = deque(maxlen=self._size)
        output = "" if result.ok else result.output[:_OUTPUT_CHARS]
        ring.append(Sample(at, result.ok, round(result.duration_s * 1000, 2), output))

    def recent(self, target: str) -> dict[str, list[Sample]]:
        """A target's probes and their recent results, oldest first."""
        return {probe: list(ring) for (t, probe), ring in self._rings.items() if t == target}

    def last_at(self, target: str) -> float | None:
        """When any probe of the target last ran."""
        times = [ring[-1].time for (t, _p), ring in self._rings.items() if t == target and ring]
        return max(times, default=None)

    def keep_only(self, targets: set[str]) -> None:
        """Forget targets that are no longer configured (after a reload)."""
        for key in [k for k in self._rings if k[0] not in targets]:
            del self._rings[key]
