"""Pure JSON documents for /history and /history/{target}, from spans and probe samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from supervisor.config import BudgetConfig
from supervisor.history import uptime
from supervisor.history.ring import Sample
from supervisor.history.uptime import Span
from supervisor.model import SelfStats
from supervisor.times import duration, iso, local_stamp

RECENT_INCIDENTS = 20


@dataclass(frozen=True, slots=True)
class DeathNote:
    """A death as the history keeps it: when, why, and the run's last lines."""

    time: float
    cause: str
    log: tuple[str, ...]


_EARLY_S = 5.0  # a death this long before an incident's first `fail` still opened it


def _incident(
    i: uptime.Incident, target: str, now: float, deaths: Sequence[DeathNote]
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "target": target,
        "start": iso(i.start),
        "end": iso(i.end) if i.end is not None else None,
        "open": i.end is None,
        "durationS": round(i.duration(now), 1),
        "reason": i.reason,
    }
    end = i.end if i.end is not None else now
    # The first death within the incident is the one that opened it: its cause is the why.
    opened = [d for d in deaths if i.start - _EARLY_S <= d.time <= end]
    if opened:
        first = min(opened, key=lambda d: d.time)
        doc["cause"], doc["log"] = first.cause, list(first.log)
    return doc


def incidents(
    target: str,
    spans: Sequence[Span],
    now: float,
    live: bool,
    deaths: Sequence[DeathNote] = (),
) -> list[dict[str, Any]]:
    """The target's incidents, newest first; with the cause of each one a death opened."""
    found = uptime.incidents(spans, live)[-RECENT_INCIDENTS:]
    return [_incident(i, target, now, deaths) for i in reversed(found)]


def hours(spans: Sequence[Span], now: float) -> list[dict[str, Any]]:
    """The 24-hour strip: one entry per clock hour, oldest first."""
    return [
        {
            "start": iso(h.start),
            "percent": None if h.percent is None else round(h.percent, 2),
            "colour": h.colour,
        }
        for h in uptime.hours(spans, now)
    ]


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def target_document(
    name: str,
    spans: Sequence[Span],
    probes: Mapping[str, Sequence[Sample]],
    now: float,
    live: bool,
    *,
    deaths: Sequence[DeathNote] = (),
) -> dict[str, Any]:
    """Uptime per window, the hourly strip, incidents and the recent probe ring."""
    return {
        "target": name,
        "time": iso(now),
        "uptime": {k: _percent(v) for k, v in uptime.uptime(spans, now).items()},
        "hours": hours(spans, now),
        "incidents": incidents(name, spans, now, live, deaths),
        "probes": {probe: [s.document() for s in ring] for probe, ring in probes.items()},
    }


def summary_entry(
    name: str,
    spans: Sequence[Span],
    last_probe: float | None,
    now: float,
    live: bool,
    *,
    deaths: Sequence[DeathNote] = (),
) -> dict[str, Any]:
    """What the status page shows of a target beside /health: uptime, strip, incidents."""
    day = [s for s in spans if s.end >= now - uptime.DAY_S]
    return {
        "uptime24h": _percent(uptime.share(day, now - uptime.DAY_S, now).percent),
        "hours": hours(day, now),
        "lastProbe": iso(last_probe) if last_probe is not None else None,
        "incidents": incidents(name, spans, now, live, deaths)[:5],
    }


def last_incident(doc: Mapping[str, Any]) -> str:
    """`open since 14:03:11Z (42s)` or `14:03:11Z, 42s` or `none`, for `supervisor status`."""
    found = doc.get("incidents") or []
    if not found:
        return "none"
    last = found[0]
    start = str(last.get("start", ""))[11:19] + "Z"
    took = duration(float(last.get("durationS", 0)))
    return f"open since {start} ({took})" if last.get("open") else f"{start}, {took}"


def about(version: str, stats: SelfStats, budget: BudgetConfig) -> dict[str, Any]:
    """The supervisor itself: version, uptime, own CPU and memory against its budget."""
    return {
        "version": version,
        "uptimeS": round(stats.uptime_s, 1),
        "cpuPercent": round(stats.cpu_percent, 3),
        "rssBytes": stats.rss_bytes,
        "budget": {"cpuPercent": budget.cpu_percent, "memoryMb": budget.memory_mb},
    }


def event_line(doc: Mapping[str, Any]) -> str:
    """One event as a line of `supervisor events`: local time, kind, summary."""
    shown = local_stamp(str(doc.get("time", "")))
    return f"{shown}  {doc.get('kind', '?'):<10}  {doc.get('summary', '')}"


def uptime_table(summary: Mapping[str, Any]) -> str:
    """Each target's 24 h uptime and last incident (the second table of `supervisor status`)."""
    rows = [("TARGET", "UPTIME 24H", "LAST INCIDENT")]
    for name, entry in (summary.get("targets") or {}).items():
        value = entry.get("uptime24h")
        shown = "no data" if value is None else f"{value:.2f} %"
        rows.append((name, shown, last_incident(entry)))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}" for r in rows]
    if summary.get("unavailable"):
        lines.append(f"(history unavailable: {summary['unavailable']})")
    return "\n".join(lines)
