"""Saying a repeated thing once per window: one line per category, then the count of those
held back. Pure: the HTTP adapter uses it for the lines clients' malformed requests cause."""

from __future__ import annotations

from collections.abc import Callable

TALLY_WINDOW_S = 60.0


class Tally:
    """One line per category per window, then the count of those held back. Pure."""

    def __init__(self, clock: Callable[[], float], window_s: float = TALLY_WINDOW_S) -> None:
        self._clock = clock
        self.window_s = window_s
        self._seen: dict[str, tuple[float, int]] = {}

    def note(self, category: str) -> int | None:
        """None to stay quiet; else the number held back since the last line (say it now)."""
        now = self._clock()
        first, held = self._seen.get(category, (0.0, -1))
        if held >= 0 and now - first < self.window_s:
            self._seen[category] = (first, held + 1)
            return None
        self._seen[category] = (now, 0)
        return max(0, held)
