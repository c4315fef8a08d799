"""HTTP throttling by what serving costs: CPU time per client, never a count of requests.

Pure: times and costs come in from the caller. Serving is the one part of our work that
outsiders control, so it is measured apart from probing (the CPU time spent serving each
request, charged to the client's address) and paid for by the client that caused it:

- each client address has a bucket of CPU time that refills at `share_percent` of a core;
  a client whose bucket is empty gets 429 with `Retry-After` (when it will have credit
  again), whatever its request rate;
- /health and /metrics (rendered once per snapshot, so cheap) are still answered from a
  small reserve of requests a second, one per route, when the client's bucket is empty:
  every local process is the same client (127.0.0.1), and one that floods the history or
  /health never gets the scraper or `supervisor status` throttled. (One that floods
  /metrics itself shares its reserve with the scraper.)
- the CPU that serving measured in a sample is taken off our own CPU before the breaker
  judges it (`observe`), so probing never pauses because of HTTP work. What a flood costs
  outside the measured steps (accepting, closing) is not in the figure: a sample with many
  more connections and chunks than `BUSY_EVENTS_PER_S` is called busy, and the breaker
  leaves our own CPU alone for it.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass

SHARE_PERCENT = 2.0  # of one core, per client address: a few 1,000-event pages a second
BURST_S = 0.25  # CPU seconds a quiet client may spend at once (a page load, a burst)
RESERVE_PER_S = 10.0  # cheap requests answered a second when a client's bucket is empty
BUSY_EVENTS_PER_S = 50.0  # connections + chunks a second beyond which serving is busy
MAX_CLIENTS = 1024  # bounded memory: the least recently seen client is forgotten first


@dataclass(slots=True)
class Meter:
    """CPU time spent on one request off the event loop (a worker thread's history read):
    the loop's own share is measured by the transport, step by step."""

    worker_s: float = 0.0


# The meter of the request being served (each request runs in a task of its own, so in a
# context of its own); None outside one.
METER: ContextVar[Meter | None] = ContextVar("supervisor_meter", default=None)


@dataclass(slots=True)
class _Bucket:
    credit_s: float  # CPU seconds this client may still spend (negative: in debt)
    at: float  # when it was last refilled


class Throttle:
    """Per-client CPU buckets, a reserve for cheap requests, and what serving cost."""

    def __init__(
        self,
        share_percent: float = SHARE_PERCENT,
        burst_s: float = BURST_S,
        reserve_per_s: float = RESERVE_PER_S,
    ) -> None:
        self.share_percent = share_percent
        self._rate = share_percent / 100.0  # CPU seconds per second
        self._burst = burst_s
        self._reserve_rate = reserve_per_s
        self._reserves: dict[str, tuple[float, float]] = {}  # route: tokens, when filled
        self._clients: dict[str, _Bucket] = {}
        self.activity = 0  # connections and chunks received since the last sample
        self.served_s = 0.0  # CPU seconds spent serving since the last sample
        self.refused = 0  # requests refused since start
        self._refused_before = 0  # ... as of the last sample
        self.refusing = False  # clients were refused in the last sample's interval

    @property
    def clients(self) -> int:
        """Client addresses remembered (bounded)."""
        return len(self._clients)

    def seen(self) -> None:
        """A client did something (connected, sent bytes): serving costs CPU."""
        self.activity += 1

    def admit(self, client: str, reserve: str | None, now: float) -> int | None:
        """None to answer a request from `client` at `now`; else seconds to tell it to wait.

        `reserve` names the cheap route the request may be answered from when the client's
        bucket is empty (None: an expensive one, never).
        """
        bucket = self._refill(client, now)
        if bucket.credit_s > 0:
            return None
        if reserve is not None and self._take_reserve(reserve, now):
            return None
        self.refused += 1
        return max(1, math.ceil(-bucket.credit_s / self._rate)) if self._rate > 0 else 60

    def charge(self, client: str, cpu_s: float, now: float) -> None:
        """`client` made us spend `cpu_s` seconds of CPU serving it."""
        self._refill(client, now).credit_s -= cpu_s
        self.served_s += cpu_s

    def observe(self, interval_s: float) -> tuple[float, bool]:
        """End a sample: the percent of a core serving took, and whether it was busy.

        Busy means more connections and chunks than measured handlers explain: what they
        cost is not all in the figure, so our own CPU cannot be blamed on probing.
        """
        percent = 100.0 * self.served_s / interval_s if interval_s > 0 else 0.0
        busy = self.activity > BUSY_EVENTS_PER_S * interval_s
        self.refusing = self.refused > self._refused_before
        self._refused_before = self.refused
        self.activity, self.served_s = 0, 0.0
        return percent, busy

    def _refill(self, client: str, now: float) -> _Bucket:
        bucket = self._clients.pop(client, None)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
        else:
            gained = max(0.0, now - bucket.at) * self._rate
            bucket.credit_s, bucket.at = min(self._burst, bucket.credit_s + gained), now
        self._clients[client] = bucket  # re-inserted: the dict stays in least-recent order
        if len(self._clients) > MAX_CLIENTS:
            del self._clients[next(iter(self._clients))]
        return bucket

    def _take_reserve(self, route: str, now: float) -> bool:
        tokens, at = self._reserves.get(route, (self._reserve_rate, now))
        tokens = min(self._reserve_rate, tokens + max(0.0, now - at) * self._reserve_rate)
        taken = tokens >= 1.0
        self._reserves[route] = (tokens - 1.0 if taken else tokens, now)
        return taken
