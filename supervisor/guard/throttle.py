"""HTTP throttling: the first thing given up when our own CPU is over budget.

Pure: times come in from the caller. Serving is the one part of our work that outsiders
control, so it is cut first (429 with Retry-After beyond a small rate) and probing is
never paused because a client is busy: each sample says whether serving was to blame
(`observe`), and the breaker leaves our own CPU to the throttle while it was.
"""

from __future__ import annotations

import math

ADMITTED_PER_S = 10.0  # answered while throttled: `supervisor status` and a scrape still fit


class Throttle:
    """Open (every request answered) or limited (a token bucket, the rest refused)."""

    def __init__(self, rate_per_s: float = ADMITTED_PER_S, burst: float = ADMITTED_PER_S) -> None:
        self.rate_per_s = rate_per_s
        self._burst = burst
        self._tokens = burst
        self._filled_at = 0.0
        self.limited = False
        self.retry_after_s = 1  # what a refused client is told: the next sample, in seconds
        self.activity = 0  # connections and chunks received since the last sample
        self.refused = 0  # requests refused since start
        self._refused_before = 0  # ... as of the last sample
        self.refusing = False  # still limited, and clients were refused since the last sample

    def seen(self) -> None:
        """A client did something (connected, sent bytes): serving costs CPU."""
        self.activity += 1

    def admit(self, now: float) -> bool:
        """True to answer a request that arrives at `now`; False to refuse it (429)."""
        if not self.limited:
            return True
        self._tokens = min(self._burst, self._tokens + (now - self._filled_at) * self.rate_per_s)
        self._filled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.refused += 1
        return False

    def observe(self, over_budget: bool, now: float, interval_s: float) -> bool:
        """Judge the interval that just ended and set the next one; True if serving was busy.

        Busy means our CPU over budget cannot be blamed on probing yet: clients came while
        serving was not throttled (throttle first), or came faster than the admitted rate
        while it was. Only an overage with HTTP idle or within that rate is probing's own.
        """
        # Each admitted request may come on a connection of its own: two events apiece.
        allowance = 2 * self.rate_per_s * interval_s if self.limited else 0.0
        busy = self.activity > allowance
        if over_budget and not self.limited:
            self._tokens, self._filled_at = self._burst, now
        self.limited = over_budget
        self.refusing = over_budget and self.refused > self._refused_before
        self._refused_before = self.refused
        self.retry_after_s = max(1, math.ceil(interval_s))
        self.activity = 0
        return busy
