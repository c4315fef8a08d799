"""When to run a probe next: every period, or soon after a first failure (fast confirm);
and which of many probes are due now (one timetable, one timer).

Pure: times come in as arguments, so the arithmetic is tested without an event loop.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

from supervisor.watch.health import ProbeTrack

T = TypeVar("T")

# A probe at its period may run this share of the period early (at most SHARE_MAX_S) when
# the timer wakes for another: many probes then share one wake-up of the daemon, which costs
# more than a stat. Never late, and never a confirm re-probe (its interval holds).
SHARE_FRACTION = 0.1
SHARE_MAX_S = 0.5


class ProbeSchedule:
    """Start-to-start periods; after an unconfirmed failure, re-probe after confirm_s."""

    def __init__(
        self, track: ProbeTrack, period_s: float, confirm_s: float, first_at: float
    ) -> None:
        self.track = track
        self.period_s = period_s
        self.confirm_s = confirm_s
        self.next_at = first_at

    def ran(self, started: float, finished: float) -> float:
        """A probe that started and finished at these times was recorded; when is the next?"""
        if self.track.suspect:
            # Confirm quickly so a real failure is seen in seconds, while one blip that
            # passes on the re-probe never flips the status.
            self.next_at = finished + self.confirm_s
        else:
            self.next_at = max(started + self.period_s, finished)
        return self.next_at

    @property
    def early_s(self) -> float:
        """How early the next run may go to share a wake-up: none for a confirm re-probe."""
        if self.track.suspect:
            return 0.0
        return min(SHARE_MAX_S, self.period_s * SHARE_FRACTION)

    def skipped(self, now: float) -> float:
        """The probe was not run (unit inactive, probes paused): try again a period later."""
        self.next_at = now + self.period_s
        return self.next_at


class Timetable(Generic[T]):
    """The due times of many runs in one heap, so that one timer serves them all."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, float, T]] = []  # (due, order, earliest, run)
        self._order = itertools.count()
        self._widest = 0.0  # the largest `early_s` put: how far ahead `due` looks

    def put(self, run: T, at: float, early_s: float = 0.0) -> None:
        """`run` is due at `at`; it may go up to `early_s` sooner with another."""
        heapq.heappush(self._heap, (at, next(self._order), at - early_s, run))
        self._widest = max(self._widest, early_s)

    def next_at(self) -> float | None:
        """When the timer must wake: the earliest due time (never an early one)."""
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[T]:
        """Take out the runs due at `now` and those that may go early with them, in due order.

        Nothing goes early unless one run is really due, so a probe alone keeps its period.
        """
        heap = self._heap
        if not heap or heap[0][0] > now:
            return []
        taken: list[tuple[float, int, float, T]] = []
        kept: list[tuple[float, int, float, T]] = []
        while heap and heap[0][0] <= now + self._widest:
            entry = heapq.heappop(heap)
            (taken if entry[2] <= now else kept).append(entry)
        for entry in kept:
            heapq.heappush(heap, entry)
        return [entry[3] for entry in taken]

    def __len__(self) -> int:
        return len(self._heap)


def detection_bound_s(period_s: float, timeout_s: float, threshold: int, confirm_s: float) -> float:
    """Worst case from a hang to `fail` when every probe costs its full timeout.

    (wait for the next probe) + threshold x timeout + (threshold - 1) x confirm interval.
    """
    return period_s + threshold * timeout_s + (threshold - 1) * confirm_s
