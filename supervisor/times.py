"""Time in words, in one place. The rule: stamps the supervisor writes (JSON, history, alerts)
are UTC; only the command line turns one into the reader's local time (`supervisor events`).

Not yet here (so not yet under the rule): the clock times in /health and chat replies
(`stopped on request at`, `held until`, `gave up until`) are still local, in their modules.
Pure: the time is always passed in.
"""

from __future__ import annotations

import re
import time


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds (detection latency is measured from it), or None."""
    if ts is None:
        return None
    ms = int((ts % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{ms:03d}Z"


def duration(seconds: float) -> str:
    """`3m 12s`, `2h 05m`, `45s`."""
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


def utc_stamp(ts: float) -> str:
    """`2027-01-15 08:00:00 UTC`, for a message a person reads."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def utc_clock(ts: float) -> str:
    """`08:00:00 UTC`: a time later today, for a message a person reads."""
    return time.strftime("%H:%M:%S UTC", time.gmtime(ts))


DEFAULT_HOLD_S = 1800.0
MAX_HOLD_S = 86_400.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A hold's length: `45s`, `20m`, `2h` (or plain seconds) as seconds; ValueError why."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use e.g. 45s, 20m or 2h")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if not 0 < seconds <= MAX_HOLD_S:
        raise ValueError(f"{text!r}: a hold lasts more than 0 s and at most 24h")
    return seconds
