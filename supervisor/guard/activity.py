"""When the supervisor last handled a failure. Pure: it reads only the injected clock.

While targets fail, restarting them, reading why they died and telling people is the job:
the supervisor's own CPU then is not overhead, and pausing probes for it (the breaker's own-CPU
rule) would blind it in the middle of an incident. The chaos run showed exactly that: the
breaker opened on "own CPU 3.3 %" a second after three restarts and kept probes paused for a
minute, so recovered targets were never seen passing again. Starting is the job too: every
unit read and every target probed at once, the first incidents found. The soak's first pause
came 14 s after a start (own CPU 4.4 %), with a hung dashboard not yet confirmed. So is
reading /proc four times a second while a probe is overdue (proof of a hang): a later soak's
breaker opened 10 s into a hang whose detection took 11.6 s, and hid its repair for a minute.
"""

from __future__ import annotations

from supervisor.model import Clock

HANDLING_S = 30.0  # after the last failure handled, our own CPU counts against the budget again


class Activity:
    """`mark()` on each failure handled; `handling()` while the last one is recent."""

    def __init__(self, clock: Clock, window_s: float = HANDLING_S) -> None:
        self._clock = clock
        self._window_s = window_s
        self._last: float | None = None

    def mark(self) -> None:
        """A failure was handled just now (a recovery step, an alert, a hang's /proc reading)."""
        self._last = self._clock.monotonic()

    def handling(self) -> bool:
        """True within `window_s` of the last mark."""
        return self._last is not None and self._clock.monotonic() - self._last < self._window_s
