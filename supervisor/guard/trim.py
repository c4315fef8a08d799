"""When to give freed memory back to the OS while under budget. Pure.

Under faults the daemon's RSS climbs in steps and stays there: bursts of work (a hang's
evidence, alerts to two chats, history writes) allocate, Python frees, and glibc keeps the
freed pages for reuse. A 2-hour soak grew like a leak until `shed_memory` (a full collection
and `malloc_trim`) ran, which it did only over `memory_mb` (100 MB, the unit's `MemoryHigh`):
`python -m devtools.leakcheck` showed 4.2 of 5.4 MiB grown over 100 fault cycles given back
by one such call, and no structure of ours growing. So RSS that rose `GROWTH_MB` over the
lowest seen since the last trim is trimmed too, at most every `EVERY_S`, and not at all while
RSS is steady. Under budget it is `malloc_trim` alone (a tenth of a millisecond): Python's
arenas did not grow, and a full collection in the loop showed in the test suite as our own
CPU, enough to open the breaker and pause probes.
"""

from __future__ import annotations

GROWTH_MB = 2.0
EVERY_S = 300.0


class TrimRule:
    """Says when RSS grew enough since its low point to be worth a trim."""

    def __init__(self, growth_mb: float = GROWTH_MB, every_s: float = EVERY_S) -> None:
        self._growth = growth_mb
        self._every = every_s
        self._low: float | None = None
        self._last: float | None = None  # monotonic time of the last trim

    def due(self, rss_mb: float, now: float) -> bool:
        """True when `rss_mb` (read at monotonic `now`) calls for a trim; then it counts as done."""
        self._low = rss_mb if self._low is None else min(self._low, rss_mb)
        if rss_mb - self._low < self._growth:
            return False
        if self._last is not None and now - self._last < self._every:
            return False
        self._last, self._low = now, rss_mb  # the next samples find the new low after the trim
        return True
