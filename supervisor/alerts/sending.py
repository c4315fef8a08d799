"""One try at a chat's next message: the one Telegram sending path.

Alert delivery (`delivery.py`) and the last word (`lastword.py`) both send through here, so a
failure means the same to both: Telegram unreachable, throttling or failing keeps the message
and the outbox says when to try again (the wait Telegram asked for, capped, or a backoff); a
message Telegram refuses is dropped; a rejected token is raised, since no chat can be reached.
What each caller does between tries (wait for a kick, or give up at a deadline) is its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from supervisor.alerts.outbox import Message, Outbox
from supervisor.errors import ChannelUnavailableError, MessageRejectedError
from supervisor.model import Clock


class Result(StrEnum):
    """How one try ended."""

    DELIVERED = "delivered"
    FAILED = "failed"  # kept in the outbox, to be tried again at its `next_at`
    REFUSED = "refused"  # dropped: Telegram will never take it


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try's result, and Telegram's words when it did not deliver."""

    result: Result
    error: str = ""


class Sender(Protocol):
    """What sends one message to one chat (`TelegramChannel`)."""

    async def send(self, chat_id: int, text: str) -> None:
        """Send, or raise one of our channel errors."""


async def attempt(channel: Sender, outbox: Outbox, head: Message, clock: Clock) -> Attempt:
    """Try a chat's head once; the outbox learns how it went (sent, retry time, or dropped).

    `TokenRejectedError` is raised: it ends sending to every chat, not just this message.
    """
    try:
        await channel.send(head.chat_id, head.text)
    except ChannelUnavailableError as exc:
        outbox.failed(head, clock.time(), str(exc), exc.retry_after_s)
        return Attempt(Result.FAILED, str(exc))
    except MessageRejectedError as exc:
        outbox.drop(head)
        return Attempt(Result.REFUSED, str(exc))
    outbox.sent(head)
    return Attempt(Result.DELIVERED)
