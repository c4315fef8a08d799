"""What a check found, and the small pure helpers every check judges with."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from supervisor.model import PerfDatum, Status

# Errors that are ours (out of descriptors, memory, processes), not the target's: a check
# that meets one is unknown, never a failure.
OUR_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS, errno.EAGAIN})
_SEVERITY = {Status.PASS: 0, Status.UNKNOWN: 1, Status.WARN: 2, Status.FAIL: 3}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one check found: its level, why in words, and the figures it saw."""

    status: Status
    output: str
    value: float | None = None
    unit: str | None = None
    source: str | None = None
    samples: tuple[tuple[str, float], ...] = ()  # extra figures for /metrics
    perfdata: tuple[PerfDatum, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the check passed outright."""
        return self.status is Status.PASS


class Check(Protocol):
    """One probe's question."""

    kind: str

    async def check(self) -> Outcome:
        """Ask it once."""


@runtime_checkable
class Instant(Check, Protocol):
    """A check that never waits (a stat, a read of /proc): asked in place, with no task or
    timeout of its own, so many of them share one timer (`runner.drive`)."""

    def read(self) -> Outcome:
        """Ask it once, now."""


def passed(ok: bool) -> Status:
    """PASS or FAIL for a yes/no question."""
    return Status.PASS if ok else Status.FAIL


def threshold_level(value: float, warn: float | None, fail: float | None) -> Status:
    """FAIL at or above `fail`, WARN at or above `warn`, else PASS (None: no such bound)."""
    if fail is not None and value >= fail:
        return Status.FAIL
    if warn is not None and value >= warn:
        return Status.WARN
    return Status.PASS


def worst(levels: list[Status]) -> Status:
    """The most severe level (fail > warn > unknown > pass); PASS for none."""
    return max(levels, key=_SEVERITY.__getitem__, default=Status.PASS)


def number(value: float) -> str:
    """A figure as a person writes it: 80, 80.5, 0.000123 (no 80.0, no 1e+06)."""
    if float(value).is_integer() and abs(value) < 1e15:  # an int too (the tests give ints)
        return str(int(value))
    return str(round(value, 6))
