"""Failed API-key attempts per client: how long its next attempt must wait.

Pure: time comes from the injected clock. Each client address pays for its own failures
(the wait doubles with each failure in a row, up to a cap). The answer to a failure is
never held (a held answer holds a connection slot): the client's *next* attempt is
refused at once (429 with Retry-After) until its wait is over. So guessing is bounded to
a few tries a second, and a real user on the same address waits at most the cap.
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
    wait_s: float = 0.0  # after last_at, before the next attempt is read


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
        """Record a failure; its number in a row and how long the next attempt must wait."""
        now = self._clock.monotonic()
        record = self._clients.pop(client, None)
        if record is None or now - record.last_at > FORGET_AFTER_S:
            record = _Record(0, now)
        record.failures += 1
        record.last_at = now
        record.wait_s = min(self._max, self._first * 2 ** min(record.failures - 1, 32))
        self._clients[client] = record  # re-inserted: the dict stays in least-recent order
        if len(self._clients) > MAX_CLIENTS:
            del self._clients[next(iter(self._clients))]
        return record.failures, record.wait_s

    def wait_s(self, client: str) -> float:
        """Seconds before `client` may try a key again (0: now)."""
        record = self._clients.get(client)
        if record is None:
            return 0.0
        return max(0.0, record.last_at + record.wait_s - self._clock.monotonic())

    def succeeded(self, client: str) -> None:
        """The right key: this client starts again from the first delay."""
        self._clients.pop(client, None)
