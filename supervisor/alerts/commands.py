"""Chat commands carried out: what each one does, through callables the daemon gives.

No I/O of its own: restarting and resetting are the daemon's callables, the words come
from `chat`. A restart needs a confirmation button pressed by the user who asked for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from supervisor.alerts import chat
from supervisor.alerts.policy import AlertPolicy
from supervisor.alerts.text import LIMIT, clip, escape_html
from supervisor.model import Clock, Hold
from supervisor.times import local_clock, parse_duration

log = logging.getLogger(__name__)
_CONFIRM_S = 120.0


class Commands:
    """What each chat command does, through the callables the daemon gives."""

    def __init__(
        self,
        *,
        clock: Clock,
        policy: AlertPolicy,
        targets: Callable[[], list[str]],
        status: Callable[[], str],
        restart: Callable[[str], Awaitable[str]],
        reset: Callable[[str], bool],
        hold: Callable[[str, float | None, str, str], Hold],
        release: Callable[[str, str], Hold | None],
    ) -> None:
        self._clock = clock
        self._policy = policy
        self._targets = targets
        self._status = status
        self._restart = restart
        self._reset = reset
        self._hold = hold
        self._release = release
        # (chat, target) -> (the user who asked, confirm deadline)
        self._pending: dict[tuple[int, str], tuple[int, float]] = {}

    def use(
        self,
        *,
        targets: Callable[[], list[str]],
        status: Callable[[], str],
        restart: Callable[[str], Awaitable[str]],
        reset: Callable[[str], bool],
    ) -> None:
        """Act on these targets from now on (a reload's new fleet)."""
        self._targets, self._status = targets, status
        self._restart, self._reset = restart, reset

    async def run(self, cmd: chat.Command, chat_id: int, user_id: int) -> chat.Reply:
        """Answer one command from an allowed chat (and user)."""
        if cmd.name == "status":
            return chat.Reply(f"<pre>{clip(self._status(), LIMIT - len('<pre></pre>'))}</pre>")
        if cmd.name in ("start", "help"):
            return chat.Reply(escape_html(chat.HELP))
        if cmd.name == "hold" and cmd.args:
            return self._held(cmd, user_id)
        arity = 2 if cmd.name == "silence" else 1
        if cmd.name not in ("restart", "silence", "unsilence", "reset", "hold", "release"):
            return chat.Reply(f"unknown command /{clip(cmd.name, 64)}\n{escape_html(chat.HELP)}")
        problem = chat.check_target(cmd, self._targets(), arity)
        if problem is not None:
            return chat.Reply(clip(problem, 512))
        name = cmd.args[0]
        if cmd.name == "restart":
            self._pending[(chat_id, name)] = (user_id, self._clock.time() + _CONFIRM_S)
            return chat.Reply(
                f"Restart <b>{escape_html(name)}</b>? Press the button within "
                f"{_CONFIRM_S:.0f} s to confirm.",
                (f"Restart {name}", f"{chat.CONFIRM_PREFIX}{name}"),
            )
        if cmd.name == "silence":
            mins = chat.minutes(cmd.args[1])
            if mins is None:
                return chat.Reply("minutes must be a number from 1 to 10080")
            self._policy.silence(name, mins)
            return chat.Reply(f"{escape_html(name)}: silenced for {mins:g} min")
        if cmd.name == "unsilence":
            had = self._policy.unsilence(name)
            return chat.Reply(
                f"{escape_html(name)}: " + ("alerts on again" if had else "was not silenced")
            )
        if cmd.name == "release":
            ended = self._release(name, f"chat:{user_id}")
            return chat.Reply(f"{escape_html(name)}: " + ("released" if ended else "was not held"))
        self._reset(name)
        return chat.Reply(f"{escape_html(name)}: recovery reset, it will be retried at once")

    def _held(self, cmd: chat.Command, user_id: int) -> chat.Reply:
        """`/hold <target> [duration] [reason...]`."""
        name, rest = cmd.args[0], list(cmd.args[1:])
        problem = chat.check_target(chat.Command(cmd.name, (name,)), self._targets())
        if problem is not None:
            return chat.Reply(clip(problem, 512))
        for_s = None
        if rest and rest[0][:1].isdigit():
            try:
                for_s = parse_duration(rest.pop(0))
            except ValueError as exc:
                return chat.Reply(escape_html(clip(str(exc), 512)))
        try:
            hold = self._hold(name, for_s, " ".join(rest), f"chat:{user_id}")
        except ValueError as exc:
            return chat.Reply(escape_html(clip(str(exc), 512)))
        until = local_clock(hold.until, seconds=False)
        return chat.Reply(f"{escape_html(name)}: held until {until}: no restarts, no alerts")

    async def button(self, data: str, chat_id: int, user_id: int) -> chat.Reply:
        """A confirmation button was pressed; only the user who asked may confirm."""
        if not data.startswith(chat.CONFIRM_PREFIX):
            return chat.Reply("unknown button")
        name = data[len(chat.CONFIRM_PREFIX) :]
        asker, deadline = self._pending.get((chat_id, name), (0, 0.0))
        if deadline < self._clock.time():
            self._pending.pop((chat_id, name), None)
            return chat.Reply(f"no pending restart of {escape_html(name)} (send /restart again)")
        if user_id != asker:
            log.warning(
                "refusing a restart confirmation of %s from user %d in chat %d: "
                "asked for by user %d",
                name,
                user_id,
                chat_id,
                asker,
            )
            return chat.Reply("Only whoever asked for this restart can confirm it.", private=True)
        del self._pending[(chat_id, name)]
        return chat.Reply(escape_html(await self._restart(name)))
