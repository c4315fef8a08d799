"""The circuit breaker: step back while the host is loaded or our probing is over budget.

Pure: samples come in with their time; no I/O, no clock reading of its own. While open,
active probes pause (D-Bus events still flow, so a unit that dies is still seen and
restarted). It closes only after the cooldown and only once the host is back under the
lower resume thresholds (hysteresis), and it always tries again: monitoring is never
disabled for good. Our own CPU counts only when serving HTTP was not to blame for it (see
`guard.throttle`): a busy client is throttled, it never pauses probing. Nor does it count
while failures are being handled (`guard.activity`): pausing probes mid-incident would hide
whether recovery worked; the host's own load still trips the breaker then.
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.config import BreakerConfig, BudgetConfig


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One reading of host and own load."""

    at: float  # monotonic seconds
    host_cpu_percent: float
    host_memory_percent: float
    own_cpu_percent: float  # of one core
    own_rss_mb: float
    serving_busy: bool = False  # HTTP clients had to be (or were not yet) throttled
    handling: bool = False  # failures were handled lately (`guard.activity`): that CPU is the job


class Breaker:
    """Closed (probing) or open (probes paused), with the reason in words."""

    def __init__(self, config: BreakerConfig, budget: BudgetConfig) -> None:
        self.config = config
        self.budget = budget
        self.open = False
        self.reason = ""
        self.trips = 0
        self._over_since: float | None = None
        self._opened_at = 0.0

    def observe(self, sample: LoadSample) -> bool:
        """Take a sample; True if the breaker opened or closed."""
        if not self.config.enabled:
            return False
        if self.open:
            return self._maybe_close(sample)
        over = self._over(sample)
        if over is None:
            self._over_since = None
            return False
        if self._over_since is None:
            self._over_since = sample.at
        if sample.at - self._over_since < self.config.sustain_s:
            return False
        self.open, self.reason, self._opened_at = True, over, sample.at
        self.trips += 1
        self._over_since = None
        return True

    def reconfigure(self, config: BreakerConfig, budget: BudgetConfig) -> None:
        """A reload's settings: an open breaker stays open, trips keep counting, and whoever
        holds this breaker (the sentry, the probes, the pass) sees them without being told."""
        self.config, self.budget = config, budget

    def describe(self) -> str:
        """ "breaker closed" or "breaker open: <why>" for STATUS= and /health."""
        return f"breaker open: {self.reason}; probes paused" if self.open else "breaker closed"

    def _over(self, s: LoadSample) -> str | None:
        cfg, budget = self.config, self.budget
        if s.host_cpu_percent > cfg.trip_cpu_percent:
            return f"host CPU {s.host_cpu_percent:.0f}% > {cfg.trip_cpu_percent:g}%"
        if s.host_memory_percent > cfg.trip_memory_percent:
            return f"host memory {s.host_memory_percent:.0f}% > {cfg.trip_memory_percent:g}%"
        if s.own_cpu_percent > budget.cpu_percent and not _excused(s):
            return f"own CPU {s.own_cpu_percent:.1f}% > budget {budget.cpu_percent:g}%"
        if s.own_rss_mb > budget.memory_mb:
            return f"own memory {s.own_rss_mb:.0f} MB > budget {budget.memory_mb:g} MB"
        return None

    def _maybe_close(self, s: LoadSample) -> bool:
        cfg, budget = self.config, self.budget
        if s.at - self._opened_at < cfg.cooldown_s:
            return False
        calm = (
            s.host_cpu_percent < cfg.resume_cpu_percent
            and s.host_memory_percent < cfg.resume_memory_percent
            and (s.own_cpu_percent <= budget.cpu_percent or _excused(s))
            and s.own_rss_mb <= budget.memory_mb
        )
        if not calm:
            return False
        self.open, self.reason = False, ""
        return True


def _excused(s: LoadSample) -> bool:
    """Our CPU went to a client (throttled instead) or to handling failures (the job)."""
    return s.serving_busy or s.handling
