"""Uptime from status spans (time in `pass`), not from samples; incidents; hourly bars.

A span is one stretch of one status for one target, as recorded while the supervisor ran.
Time without a span (the supervisor was stopped) or in `unknown` (it could not see) is no
data: it counts neither for nor against a target.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from supervisor.model import Status

HOUR_S = 3600.0
DAY_S = 86_400.0
WINDOWS = {"24h": DAY_S, "7d": 7 * DAY_S, "30d": 30 * DAY_S}
_KNOWN = (Status.PASS.value, Status.WARN.value, Status.FAIL.value)
_AMBER_FROM = 95.0  # an hour with some trouble but at least this much uptime is amber, not red


@dataclass(frozen=True, slots=True)
class Span:
    """One status held from `start` to `end` (seconds since the epoch)."""

    status: str
    start: float
    end: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Share:
    """Seconds in each status within a window."""

    passing: float = 0.0
    warning: float = 0.0
    failing: float = 0.0

    @property
    def known(self) -> float:
        """Seconds with data."""
        return self.passing + self.warning + self.failing

    @property
    def percent(self) -> float | None:
        """Time in pass as a percentage of the time with data; None without data."""
        return None if self.known <= 0 else 100.0 * self.passing / self.known


@dataclass(frozen=True, slots=True)
class Hour:
    """One bar of the 24-hour strip."""

    start: float
    percent: float | None
    colour: str  # green | amber | red | grey


@dataclass(frozen=True, slots=True)
class Incident:
    """A stretch of failure: from the first `fail` until the target passed again."""

    start: float
    end: float | None  # None while it lasts
    reason: str

    def duration(self, now: float) -> float:
        """Seconds it lasted (or has lasted so far)."""
        return (self.end if self.end is not None else now) - self.start


def share(spans: Iterable[Span], start: float, end: float) -> Share:
    """How the window [start, end) divides among pass, warn and fail."""
    seconds = dict.fromkeys(_KNOWN, 0.0)
    for span in spans:
        overlap = min(span.end, end) - max(span.start, start)
        if overlap > 0 and span.status in seconds:
            seconds[span.status] += overlap
    return Share(seconds["pass"], seconds["warn"], seconds["fail"])


def uptime(spans: Sequence[Span], now: float) -> dict[str, float | None]:
    """Uptime percentage per window (24h, 7d, 30d); None where there is no data."""
    return {name: share(spans, now - length, now).percent for name, length in WINDOWS.items()}


def colour(s: Share) -> str:
    """green: all pass; amber: some trouble, mostly up; red: down a good part; grey: no data."""
    percent = s.percent
    if percent is None:
        return "grey"
    if s.warning == 0 and s.failing == 0:
        return "green"
    return "amber" if percent >= _AMBER_FROM else "red"


def hours(spans: Sequence[Span], now: float, count: int = 24) -> list[Hour]:
    """The last `count` clock hours, oldest first; the last one is the current, partial hour."""
    current = now - now % HOUR_S
    out = []
    for i in range(count - 1, -1, -1):
        start = current - i * HOUR_S
        s = share(spans, start, min(start + HOUR_S, now))
        out.append(Hour(start, s.percent, colour(s)))
    return out


def incidents(spans: Sequence[Span], live: bool) -> list[Incident]:
    """Failure stretches, oldest first; `live`: the last span is still going on.

    Non-pass spans between two failures (warn, unknown, a gap while stopped) stay inside
    the incident: it ends only when the target passes again.
    """
    out: list[Incident] = []
    opened: Span | None = None
    for span in sorted(spans, key=lambda s: s.start):
        if span.status == Status.FAIL.value and opened is None:
            opened = span
        elif span.status == Status.PASS.value and opened is not None:
            out.append(Incident(opened.start, span.start, opened.reason))
            opened = None
    if opened is not None:
        last_end = max(s.end for s in spans)
        out.append(Incident(opened.start, None if live else last_end, opened.reason))
    return out
