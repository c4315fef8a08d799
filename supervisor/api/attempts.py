"""Failed API-key attempts per client: how long the answer to the next failure is held.

Pure: time comes from the injected clock. Each client address pays for its own failures
(the delay doubles with each failure in a row, up to a cap), and only failures are held:
a request with the right key is answered at once, so one guessing client can never lock
the real user out. With the connection cap this bounds guessing to a few tries a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.model import Clock

FIRST_DELAY_S = 0.25
MAX_DELAY_S = 4.0  # under the handler timeout, so a held answer is still an answer
FORGET_AFTER_S = 600.0  # a client quiet this long starts again from the first delay
MAX_CLIENTS = 1024  # bounded memory: the oldest client is forgotten first


@dataclass
class _Record:
    failures: int
    last_at: float


class KeyAttempts:
    """Consecutive failures by client address."""

    def __init__(
        self,
        clock: Clock,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
    ) -> None:
        self._clock = clock
        self._first = first_delay_s
        self._max = max_delay_s
        self._clients: dict[str, _Record] = {}

    def failed(self, client: str) -> tuple[int, float]:
        """Record a failure; its number in a row and how long to hold the answer."""
        now = self._clock.monotonic()
        record = self._clients.pop(client, None)
        if record is None or now - record.last_at > FORGET_AFTER_S:
            record = _Record(0, now)
        record.failures += 1
        record.last_at = now
        self._clients[client] = record  # re-inserted: the dict stays in least-recent order
        if len(self._clients) > MAX_CLIENTS:
            del self._clients[next(iter(self._clients))]
        return record.failures, min(self._max, self._first * 2 ** min(record.failures - 1, 32))

    def succeeded(self, client: str) -> None:
        """The right key: this client starts again from the first delay."""
        self._clients.pop(client, None)
