"""Undelivered messages, one queue per chat, with retry timing. Pure data: the daemon persists it.

Delivery is in order within a chat: while a chat's head cannot be sent, nothing behind it
is (so a person reads "failing" before "resolved"). Chats are independent: one that
Telegram throttles, or that fails, holds back only its own messages. Each message waits
`retry_after` when Telegram says so, capped at `MAX_WAIT_S` (Telegram has asked for an
hour; a person must not wait that long to hear of a failure), otherwise an exponential
backoff.

The saved form is one list of messages, each naming its chat, in the order they were
queued: the same form as when there was one queue for all chats, so either restores.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from supervisor.model import backoff
from supervisor.times import utc_clock

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)  # an outage may last hours
MAX_WAIT_S = 300.0  # the longest we wait before trying a chat again, whatever Telegram asks


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
    asked_s: float | None = None  # the wait Telegram asked for at the last failure, if any


class Outbox:
    """Per-chat FIFOs of messages waiting for delivery."""

    def __init__(self, limit: int = 1000, backoff_s: tuple[float, ...] = BACKOFF_S) -> None:
        self._queues: dict[int, deque[Message]] = {}
        self._next_id = 1
        # Bounded per chat: a very long outage or a throttled chat drops that chat's
        # oldest messages (counted in `dropped`), never another chat's.
        self._limit = limit
        self._backoff_s = backoff_s  # the waits between tries when Telegram names none
        self.dropped = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def add(self, chat_id: int, text: str, now: float) -> Message:
        """Queue a message for sending as soon as those before it in its chat are out."""
        msg = Message(self._next_id, chat_id, text, now)
        self._next_id += 1
        queue = self._queues.setdefault(chat_id, deque())
        if len(queue) >= self._limit:
            queue.popleft()
            self.dropped += 1
        queue.append(msg)
        return msg

    def head(self, chat_id: int) -> Message | None:
        """The next message to deliver to `chat_id`, if any."""
        queue = self._queues.get(chat_id)
        return queue[0] if queue else None

    def chats(self) -> list[int]:
        """Chats with messages waiting."""
        return [chat for chat, queue in self._queues.items() if queue]

    def sent(self, msg: Message) -> None:
        """The head of its chat was delivered: forget it."""
        queue = self._queues.get(msg.chat_id)
        if queue and queue[0].id == msg.id:
            queue.popleft()
            if not queue:
                del self._queues[msg.chat_id]

    def failed(self, msg: Message, now: float, error: str, retry_after_s: float | None) -> float:
        """A chat's head could not be delivered now; returns when to try it again."""
        msg.attempts += 1
        msg.last_error = error
        msg.asked_s = retry_after_s
        if retry_after_s is not None:
            delay = min(max(retry_after_s, 0.0), MAX_WAIT_S)
        else:
            delay = backoff(self._backoff_s, msg.attempts - 1)
        msg.next_at = now + delay
        return msg.next_at

    def drop(self, msg: Message) -> None:
        """Give up on a message that can never be delivered (e.g. the chat does not exist)."""
        self.sent(msg)

    def keep_only(self, chat_ids: Collection[int]) -> dict[int, int]:
        """Forget the messages of chats no longer configured; returns {chat: messages dropped}."""
        gone = {chat: len(q) for chat, q in self._queues.items() if chat not in chat_ids and q}
        for chat in gone:
            del self._queues[chat]
        return gone

    def describe(self, now: float) -> str | None:
        """Why messages are waiting, for /health: the chat that waits longest; None if none do."""
        stuck = [m for m in self._heads() if m.attempts and m.next_at > now]
        if not stuck:
            return None
        msg = max(stuck, key=lambda m: m.next_at)
        at = utc_clock(msg.next_at)
        if msg.asked_s is not None:
            why = f"Telegram asked us to wait {msg.asked_s:.0f} s"
            if msg.asked_s > MAX_WAIT_S:
                why += f" (we wait at most {MAX_WAIT_S:.0f} s)"
        else:
            why = f"cannot reach Telegram ({msg.last_error})"
        return (
            f"alerts: {why} for chat {msg.chat_id}; next try in {msg.next_at - now:.0f} s "
            f"at {at}; {len(self)} waiting"
        )

    def oldest(self) -> Message | None:
        """The longest-waiting message of any chat."""
        return min(self._heads(), key=lambda m: m.created, default=None)

    def _heads(self) -> Iterator[Message]:
        return (q[0] for q in self._queues.values() if q)

    def export(self) -> dict[str, Any]:
        """For the state file: every message, in the order it was queued."""
        messages = sorted((m for q in self._queues.values() for m in q), key=lambda m: m.id)
        return {"next_id": self._next_id, "messages": [asdict(m) for m in messages]}

    def restore(self, data: dict[str, Any]) -> None:
        """Messages a previous run could not deliver come first in their chat, in their order."""
        restored = []
        for raw in data.get("messages", []):
            try:
                msg = Message(**raw)
            except TypeError:
                continue
            if isinstance(msg.id, int) and isinstance(msg.chat_id, int):  # else: unsendable
                restored.append(msg)
        saved_next = data.get("next_id", 1)
        next_id = max(
            [saved_next if isinstance(saved_next, int) else 1, *(m.id + 1 for m in restored)]
        )
        queued = sorted((m for q in self._queues.values() for m in q), key=lambda m: m.id)
        for msg in queued:  # queued before the restore: renumber after the old ones
            msg.id, next_id = next_id, next_id + 1
        self._queues = {}
        for msg in [*restored, *queued]:
            self._queues.setdefault(msg.chat_id, deque()).append(msg)
        self._next_id = next_id
