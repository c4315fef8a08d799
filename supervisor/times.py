"""Time in words, in one place, under one time-zone rule:

- what is stored or sent away is UTC: stamps in JSON, history and the event stream (`iso`),
  and the times in Telegram alerts (`utc_stamp`, `utc_clock`), read on any phone anywhere;
- what a person reads on the box itself is the box's local time: a clock time in /health,
  the command line and chat replies (`local_clock`: `held until`, `gave up until`, `stopped on
  request at`), and a stored stamp shown back by the command line (`local_stamp`:
  `supervisor events`, `supervisor why`).

No other module formats a time. Pure: the time is always passed in (the zone is the process's).
"""

from __future__ import annotations

import re
import time
from datetime import datetime


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


def local_clock(ts: float, *, seconds: bool = True) -> str:
    """`14:05:09` (or `14:05`) in local time: a time later today, read on this box."""
    return time.strftime("%H:%M:%S" if seconds else "%H:%M", time.localtime(ts))


def local_stamp(stamp: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A stored RFC 3339 stamp in local time for the command line; text that is none, as is."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return when.astimezone().strftime(fmt)


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
