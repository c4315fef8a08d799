"""Conditions on a JSON body: pure, with `now` passed in, so freshness is tested by hand.

Each condition names a field by a dotted path (`feed.last_message_at`, `positions[0].size`)
and says what must hold; a broken one says which and why, in words:
`feed.last_message_at: 312 s old (max 60 s)`, `balance: 80 < 100 (warn)`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from supervisor.config import JsonCondition, split_path
from supervisor.model import Status
from supervisor.probing.outcome import number

_MISSING = object()
_MS_EPOCH_ABOVE = 1e11  # seconds since the epoch reach this in the year 5138: it is ms


@dataclass(frozen=True, slots=True)
class Finding:
    """A condition that does not hold: how bad, and why."""

    status: Status
    words: str


def evaluate(doc: Any, conditions: Sequence[JsonCondition], now: float) -> list[Finding]:
    """Every condition that does not hold (an empty list: all hold)."""
    found = []
    for cond in conditions:
        finding = judge(cond, resolve(doc, cond.path), now)
        if finding is not None:
            found.append(finding)
    return found


def resolve(doc: Any, path: str) -> Any:
    """The value at `path`, or `_MISSING` when any step is absent."""
    node = doc
    for step in split_path(path):
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return _MISSING
        elif not isinstance(node, dict) or step not in node:
            return _MISSING
        node = node[step]
    return node


def judge(cond: JsonCondition, got: Any, now: float) -> Finding | None:
    """Whether one condition holds for the value found; None when it does."""
    path = cond.path
    if got is _MISSING:
        return Finding(Status.FAIL, f"{path}: missing")
    if cond.equals is not None and not _same(got, cond.equals):
        return Finding(Status.FAIL, f"{path}: {_show(got)} (expected {_show(cond.equals)})")
    if cond.one_of is not None and not any(_same(got, want) for want in cond.one_of):
        return Finding(Status.FAIL, f"{path}: {_show(got)} (expected one of {_show(cond.one_of)})")
    bounds = (cond.min, cond.max, cond.warn_below, cond.warn_above)
    if any(b is not None for b in bounds):
        finding = _bounds(cond, got)
        if finding is not None:
            return finding
    if cond.max_age_s is not None or cond.warn_age_s is not None:
        return _age(cond, got, now)
    return None


def _bounds(cond: JsonCondition, got: Any) -> Finding | None:
    value = _number(got)
    path = cond.path
    if value is None:
        return Finding(Status.FAIL, f"{path}: {_show(got)} is not a number")
    shown = number(value)
    for limit, below, status in (
        (cond.min, True, Status.FAIL),
        (cond.max, False, Status.FAIL),
        (cond.warn_below, True, Status.WARN),
        (cond.warn_above, False, Status.WARN),
    ):
        if limit is None or (value >= limit if below else value <= limit):
            continue
        sign = "<" if below else ">"
        tag = " (warn)" if status is Status.WARN else ""
        return Finding(status, f"{path}: {shown} {sign} {number(limit)}{tag}")
    return None


def _age(cond: JsonCondition, got: Any, now: float) -> Finding | None:
    path = cond.path
    stamp = timestamp(got)
    if isinstance(stamp, str):
        return Finding(Status.FAIL, f"{path}: {stamp}")
    age = max(0.0, now - stamp)  # a clock a little ahead of ours is not "stale"
    if cond.max_age_s is not None and age > cond.max_age_s:
        return Finding(Status.FAIL, f"{path}: {age:.0f} s old (max {number(cond.max_age_s)} s)")
    if cond.warn_age_s is not None and age > cond.warn_age_s:
        return Finding(Status.WARN, f"{path}: {age:.0f} s old (warn {number(cond.warn_age_s)} s)")
    return None


def timestamp(value: Any) -> float | str:
    """Seconds since the epoch from ISO-8601 with a zone, or epoch seconds (or ms); else why not."""
    seconds = _number(value)
    if seconds is not None:
        return seconds / 1000 if abs(seconds) >= _MS_EPOCH_ABOVE else seconds
    if not isinstance(value, str):
        return f"{_show(value)} is not a timestamp"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"{_show(value)} is not a timestamp (ISO-8601 or seconds since the epoch)"
    if parsed.tzinfo is None:
        return f"{_show(value)} has no time zone (add Z or +00:00)"
    return parsed.timestamp()


def _number(value: Any) -> float | None:
    """A JSON number, or a string holding one (exchanges send prices as strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def _same(got: Any, want: Any) -> bool:
    # JSON true is not 1: compare booleans only with booleans.
    if isinstance(got, bool) or isinstance(want, bool):
        return isinstance(got, bool) and isinstance(want, bool) and got is want
    return bool(got == want)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
