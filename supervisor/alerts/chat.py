"""Chat commands: parsing and the replies' words. Pure; the daemon carries them out.

Commands are answered only for allow-listed chats (checked by the caller before anything
here runs). `/restart` asks for confirmation with a button; the others act at once.
"""

from __future__ import annotations

from dataclasses import dataclass

HELP = (
    "/status - the health table\n"
    "/restart <target> - restart a unit (asks to confirm)\n"
    "/silence <target> <minutes> - no alerts about it for a while\n"
    "/unsilence <target> - alerts again\n"
    "/reset <target> - retry a target whose recovery gave up"
)
CONFIRM_PREFIX = "restart:"


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed `/name arg...`."""

    name: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer; `button` is (label, callback data) for a confirmation."""

    text: str
    button: tuple[str, str] | None = None


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
