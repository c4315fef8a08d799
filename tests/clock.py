"""A clock the test moves by hand, so time-based logic is tested without sleeping."""

from __future__ import annotations


class FakeClock:
    """Monotonic and wall time that only move when told."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._mono = 1000.0
        self._wall = start

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += seconds

    def step_wall(self, seconds: float) -> None:
        """The wall clock alone moves (NTP slews it; reading it and monotonic time jitters)."""
        self._wall += seconds
