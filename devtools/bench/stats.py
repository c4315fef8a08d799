"""Pure figures: summaries of samples, /health times, wrk's output, watchdog gaps."""

from __future__ import annotations

import itertools
import re
import statistics
from datetime import UTC, datetime
from typing import Any

from devtools.bench.settings import BenchError

_WRK_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def fmt_s(value: float) -> str:
    """Seconds, with two decimals below 10 s and one above."""
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def summary(values: list[float]) -> dict[str, Any]:
    """Median, min, max, count and the (rounded) values themselves."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": [round(v, 4) for v in values],
    }


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50, p99 (inclusive interpolation: with 20 samples it lies near the max) and max."""
    if len(values) > 1:
        p99 = statistics.quantiles(values, n=100, method="inclusive")[98]
    else:
        p99 = values[0]
    return {
        "p50": statistics.median(values),
        "p99": p99,
        "max": max(values),
        "min": min(values),
        "n": len(values),
        "values": [round(v, 2) for v in values],
    }


def outcome(values: list[float], missed: list[str], waited_s: float) -> dict[str, Any]:
    """Recovery times of one tool in one scenario, and the repetitions it did not recover."""
    result: dict[str, Any] = {"recovered": len(values), "not_recovered": len(missed)}
    if values:
        result.update(summary(values))
    if missed:
        result["waited_s"] = waited_s
        result["why"] = missed
    return result


def parse_time(text: str) -> float:
    """RFC 3339 UTC with milliseconds, as /health writes it, to seconds since the epoch."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms) and errors from `wrk --latency` output."""

    def ms(value: str) -> float:
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
        if m is None:
            raise BenchError(f"cannot read wrk's latency {value!r}")
        return float(m.group(1)) * _WRK_UNITS_MS[m.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+\w+)", text, re.M)
    if rps is None or total is None:
        raise BenchError(f"cannot read wrk's output:\n{text}")
    lat = {p: ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "p50_ms": lat.get("50"),
        "p90_ms": lat.get("90"),
        "p99_ms": lat.get("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def parse_answers(text: str) -> dict[str, Any]:
    """What the answers were, from the line load.COUNTING_LUA prints: served (200/503 with a
    body), throttled (429), other; `rps` is served answers per second of wrk's run."""
    m = re.search(r"^answers: served (\d+) throttled (\d+) other (\d+) in (\d+) us$", text, re.M)
    if m is None:
        raise BenchError(f"wrk printed no answer counts (is the counting script loaded?):\n{text}")
    served, throttled, other, duration_us = map(int, m.groups())
    return {
        "served": served,
        "throttled": throttled,
        "other": other,
        "rps": served / (duration_us / 1e6) if duration_us else 0.0,
    }


def max_gap(pings: list[float], start: float, end: float) -> float:
    """The longest time without WATCHDOG=1 within [start, end] (the last ping before start
    counts; at the end, the time since the last ping counts)."""
    before = [t for t in pings if t < start][-1:]
    seq = before + [t for t in pings if start <= t <= end]
    if not seq:
        return end - start
    gaps = [b - a for a, b in itertools.pairwise(seq)]
    return max([*gaps, end - seq[-1], (seq[0] - start) if not before else 0.0])


def watchdog_verdict(
    pings: list[float], start: float, end: float, interval_s: float, slack_s: float
) -> dict[str, Any]:
    """The longest gap between WATCHDOG=1 pings within [start, end], judged against the ping
    interval (half of WATCHDOG_USEC) plus `slack_s` of timer jitter: on time, or late."""
    gap = max_gap(pings, start, end)
    limit = interval_s + slack_s
    return {"max_gap_s": round(gap, 4), "limit_s": limit, "on_time": gap <= limit}


def rss_growth(on_mb: list[float], off_mb: list[float]) -> dict[str, Any]:
    """RSS with the history on and off, read in pairs side by side: each side's summary and
    the growth, the median of the pairwise differences (pairs share the machine's moment)."""
    if len(on_mb) != len(off_mb) or not on_mb:
        raise BenchError(f"RSS readings do not pair up: {len(on_mb)} on, {len(off_mb)} off")
    diffs = [on - off for on, off in zip(on_mb, off_mb, strict=True)]
    return {
        "on_mb": summary(on_mb),
        "off_mb": summary(off_mb),
        "growth_mb": summary(diffs),
    }
