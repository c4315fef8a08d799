"""The parts of a chaos run's verdict: one check's line, a kind's row, a footprint, the whole,
and how a check names a moment."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from devtools.chaos.plan import Kind


@dataclass(frozen=True)
class Check:
    """One line of the verdict."""

    name: str
    ok: bool
    detail: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class KindRow:
    """Per kind: how many, how many detected and repaired, and how fast."""

    kind: Kind
    injected: int
    skipped: int
    detected: str  # "5/5" or "-" where detection is not asked of the supervisor
    repaired: str
    detect_s: list[float]
    repair_s: list[float]


@dataclass(frozen=True)
class Footprint:
    """One life's RSS and descriptors, first and last measured."""

    life: int
    span_s: float
    rss_start: int
    rss_end: int
    fds_start: int
    fds_end: int
    kinds_start: str = ""  # what the descriptors were, at each end
    kinds_end: str = ""


@dataclass
class Verdict:
    """Everything the report prints."""

    kinds: list[KindRow] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    footprints: list[Footprint] = field(default_factory=list)
    cpu_percent: float = 0.0
    cpu_s: float = 0.0
    health: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)


def clock(at: float) -> str:
    """`at` as the local time of day, to a tenth of a second."""
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 10)}"
