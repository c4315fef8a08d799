"""Undelivered messages, in order, with retry timing. Pure data: the daemon persists it.

Delivery is in order: while the head cannot be sent, nothing behind it is (so a person
reads "failing" before "resolved"). Each message waits `retry_after` when Telegram says so,
otherwise an exponential backoff.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from supervisor.model import backoff

_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(slots=True)
class Message:
    """One message to one chat."""

    id: int
    chat_id: int
    text: str
    created: float  # wall clock
    attempts: int = 0
    next_at: float = 0.0  # wall clock: not before this
    last_error: str = ""


class Outbox:
    """FIFO of messages waiting for delivery."""

    def __init__(self, limit: int = 1000) -> None:
        self._queue: deque[Message] = deque()
        self._next_id = 1
        self._limit = limit  # bounded: a very long outage drops the oldest, counted in `dropped`
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, chat_id: int, text: str, now: float) -> Message:
        """Queue a message for sending as soon as those before it are out."""
        msg = Message(self._next_id, chat_id, text, now)
        self._next_id += 1
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(msg)
        return msg

    def head(self) -> Message | None:
        """The next message to deliver, if any."""
        return self._queue[0] if self._queue else None

    def sent(self, msg: Message) -> None:
        """The head was delivered: forget it."""
        if self._queue and self._queue[0].id == msg.id:
            self._queue.popleft()

    def failed(self, msg: Message, now: float, error: str, retry_after_s: float | None) -> float:
        """The head could not be delivered now; returns when to try again."""
        msg.attempts += 1
        msg.last_error = error
        delay = (
            retry_after_s if retry_after_s is not None else backoff(_BACKOFF_S, msg.attempts - 1)
        )
        msg.next_at = now + delay
        return msg.next_at

    def drop(self, msg: Message) -> None:
        """Give up on a message that can never be delivered (e.g. the chat does not exist)."""
        self.sent(msg)

    def export(self) -> dict[str, Any]:
        """For the state file."""
        return {"next_id": self._next_id, "messages": [asdict(m) for m in self._queue]}

    def restore(self, data: dict[str, Any]) -> None:
        """Messages a previous run could not deliver come first, in their order."""
        restored = []
        for raw in data.get("messages", []):
            try:
                restored.append(Message(**raw))
            except TypeError:
                continue
        next_id = max([int(data.get("next_id", 1)), *(m.id + 1 for m in restored)])
        for msg in self._queue:  # queued before the restore: renumber after the old ones
            msg.id, next_id = next_id, next_id + 1
        self._queue = deque([*restored, *self._queue])
        self._next_id = next_id
