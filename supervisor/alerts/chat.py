"""Chat commands: who may send them, parsing and the replies' words. Pure; the daemon
carries them out.

Commands are answered only for allow-listed chats (and users, when `allowed_user_ids` is
set), and only while fresh: `screen` decides before anything else runs. `/restart` asks for
confirmation with a button; the others act at once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from supervisor.model import Incoming

HELP = (
    "/status - the health table\n"
    "/restart <target> - restart a unit (asks to confirm)\n"
    "/silence <target> <minutes> - no alerts about it for a while\n"
    "/unsilence <target> - alerts again\n"
    "/reset <target> - retry a target whose recovery gave up\n"
    "/hold <target> [20m] [reason] - no restarts, no alerts for a while (default 30m)\n"
    "/release <target> - end a hold"
)
CONFIRM_PREFIX = "restart:"
STALE_S = 60.0  # a command older than this when we read it is not run: the moment has passed


class Verdict(StrEnum):
    """Whether an update may be acted on, and if not, why."""

    ACCEPT = "accept"
    CHAT = "chat not in alerts.telegram.chat_ids"
    USER = "user not in alerts.telegram.allowed_user_ids"
    STALE = "too old"


def screen(
    item: Incoming,
    now: float,
    chat_ids: Collection[int],
    user_ids: Collection[int] | None,
    stale_s: float = STALE_S,
) -> Verdict:
    """Whether to act on `item` now (wall clock `now`).

    A message's age is judged against now, not against when we started: commands that
    waited out a Telegram outage are as stale as those queued while we were down. A button
    press carries no date of its own (only the prompt's); its freshness is the confirmation
    deadline, which the caller checks against now.
    """
    if item.chat_id not in chat_ids:
        return Verdict.CHAT
    if user_ids is not None and item.user_id not in user_ids:
        return Verdict.USER
    if not item.callback_id and item.date < now - stale_s:
        return Verdict.STALE
    return Verdict.ACCEPT


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed `/name arg...`."""

    name: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer; `button` is (label, callback data) for a confirmation.

    A `private` reply to a button press is shown only to whoever pressed it (as the answer
    to the press), not posted in the chat.
    """

    text: str
    button: tuple[str, str] | None = None
    private: bool = False


def parse(text: str, bot_username: str = "") -> Command | None:
    """`/restart@MyBot dashboard` -> Command("restart", ("dashboard",)); other text -> None."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return None
    name, _, addressee = words[0][1:].partition("@")
    if addressee and bot_username and addressee.lower() != bot_username.lower():
        return None  # meant for another bot in the same group
    return Command(name.lower(), tuple(words[1:]))


def check_target(cmd: Command, targets: list[str], arity: int = 1) -> str | None:
    """None if the command names a configured target with the right number of arguments."""
    if len(cmd.args) != arity:
        usage = "/silence <target> <minutes>" if cmd.name == "silence" else f"/{cmd.name} <target>"
        return f"usage: {usage}"
    if cmd.args[0] not in targets:
        return f"{cmd.args[0]!r} is not a configured target ({', '.join(targets)})"
    return None


def minutes(word: str) -> float | None:
    """A positive number of minutes up to a week, else None."""
    try:
        value = float(word)
    except ValueError:
        return None
    return value if 0 < value <= 7 * 24 * 60 else None
