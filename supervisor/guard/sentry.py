"""The load loop: sample the host's and our own load, feed the breaker, keep our budget.

A joiner of the guard room: the readings (adapter) go to the throttle and the breaker
(pure); what follows (notes, alerts, metrics, exiting over the hard memory limit) goes out
through callables. HTTP clients pay for their own cost (`guard.throttle`): the CPU that
serving measured is taken off our own before the breaker judges it, so a reader can never
pause probing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from supervisor.guard.breaker import Breaker, LoadSample
from supervisor.guard.load import HostLoad, SelfSampler, host_load, shed_memory
from supervisor.guard.throttle import Throttle
from supervisor.guard.trim import TrimRule
from supervisor.model import Clock

log = logging.getLogger(__name__)
_MIB = 1024 * 1024


@dataclass(frozen=True)
class GuardHooks:
    """Where the guard's findings go."""

    observe_load: Callable[[HostLoad], None]  # every sample (metrics)
    breaker_changed: Callable[[Breaker], None]  # opened or closed
    over_hard_limit: Callable[[], None]  # our RSS is past memory_hard_mb: stop
    throttle_changed: Callable[[str | None], None]  # why HTTP is throttled, or None: not


class Sentry:
    """Samples every `interval_s`; `samples` counts completed samples (tests wait on it)."""

    def __init__(
        self,
        clock: Clock,
        sampler: SelfSampler,
        throttle: Throttle,
        hooks: GuardHooks,
        *,
        breaker: Breaker,
        handling: Callable[[], bool] = lambda: False,
    ) -> None:
        self._clock = clock
        self._breaker = breaker  # a reload reconfigures it in place: read it each time
        self._sampler = sampler
        self._throttle = throttle
        self._hooks = hooks
        self._handling = handling  # failures handled lately: our CPU is the job then
        self._trim = TrimRule()
        self.samples = 0
        self.trims = 0  # under budget (`guard.trim`): leakcheck and the soak read it

    async def run(self) -> None:
        """Forever; the breaker's settings and budget are read each time (a reload's apply)."""
        host_load()  # prime psutil's CPU counter: the first reading is since this call
        while True:
            await asyncio.sleep(self._breaker.config.sample_interval_s)
            try:
                self.sample()
            except Exception:  # sampling must never stop supervision
                log.exception("sampling load failed")
            self.samples += 1

    def sample(self) -> None:
        """One sample: guard our memory, then let the breaker judge the load."""
        breaker = self._breaker
        budget = breaker.budget
        stats = self._sampler.sample()
        host = host_load()
        rss_mb = stats.rss_bytes / _MIB
        if rss_mb > budget.memory_hard_mb:
            log.critical(
                "own memory %.0f MB is over the hard limit %g MB: exiting so systemd restarts us",
                rss_mb,
                budget.memory_hard_mb,
            )
            self._hooks.over_hard_limit()
            return
        now = self._clock.monotonic()
        if rss_mb > budget.memory_mb:
            shed_memory()
        elif self._trim.due(rss_mb, now):
            shed_memory(collect=False)  # freed memory piled up under budget (`guard.trim`)
            self.trims += 1
            log.debug("gave freed memory back: RSS was %.1f MB", rss_mb)
        serving, busy = self._throttle_http(stats.cpu_percent, breaker.config.sample_interval_s)
        own = max(0.0, stats.cpu_percent - serving)
        sample = LoadSample(
            now, host.cpu_percent, host.memory_percent, own, rss_mb, busy, self._handling()
        )
        self._hooks.observe_load(host)
        if breaker.observe(sample):
            if breaker.open:
                log.warning("%s", breaker.describe())
            else:
                log.info("breaker closed: host load back under the resume thresholds")
            self._hooks.breaker_changed(breaker)

    def _throttle_http(self, cpu: float, interval: float) -> tuple[float, bool]:
        """What serving cost in the interval (percent of a core) and whether it was busy.

        Said (log, /health note) only while clients are actually refused.
        """
        throttle = self._throttle
        was = throttle.refusing
        serving, busy = throttle.observe(interval)
        if throttle.refusing and not was:
            log.warning(
                "HTTP throttled: a client spent more than %g%% of a core on serving "
                "(own CPU %.1f%%, %.1f%% of it serving): 429 until it has credit again",
                throttle.share_percent,
                cpu,
                serving,
            )
            note = f"HTTP throttled: a client over its {throttle.share_percent:g}% CPU share"
            self._hooks.throttle_changed(note)
        elif was and not throttle.refusing:
            log.info("HTTP no longer throttled (own CPU %.1f%%)", cpu)
            self._hooks.throttle_changed(None)
        return serving, busy
