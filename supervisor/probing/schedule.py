"""When to run a probe next: every period, or soon after a first failure (fast confirm).

Pure: times come in as arguments, so the arithmetic is tested without an event loop.
"""

from __future__ import annotations

from supervisor.watch.health import ProbeTrack


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

    def skipped(self, now: float) -> float:
        """The probe was not run (unit inactive, probes paused): try again a period later."""
        self.next_at = now + self.period_s
        return self.next_at


def detection_bound_s(period_s: float, timeout_s: float, threshold: int, confirm_s: float) -> float:
    """Worst case from a hang to `fail` when every probe costs its full timeout.

    (wait for the next probe) + threshold x timeout + (threshold - 1) x confirm interval.
    """
    return period_s + threshold * timeout_s + (threshold - 1) * confirm_s
