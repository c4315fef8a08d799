"""Alert delivery and chat commands: the policy's alerts go through the persisted outbox to
Telegram, and commands from allow-listed chats come back as actions.

Part of the composition layer (like repair.py). Everything here runs in background tasks:
Telegram being slow, down or misconfigured never blocks supervision or READY=1.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from supervisor.alerts import chat
from supervisor.alerts.outbox import Outbox
from supervisor.alerts.policy import Alert, AlertPolicy, Severity, escape_html, format_html
from supervisor.config import AlertsConfig
from supervisor.errors import (
    ChannelUnavailableError,
    MessageRejectedError,
    TokenRejectedError,
)
from supervisor.history.events import Discard, EventSink, Kind
from supervisor.model import Clock, Incoming, backoff
from supervisor.runtime import logs

if TYPE_CHECKING:
    from supervisor.alerts.telegram import TelegramChannel

log = logging.getLogger(__name__)
STALE_S = 60.0  # commands older than this when we read them were queued while we were down
_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_CONFIRM_S = 120.0
_LEVEL = {
    Severity.CRITICAL: logging.ERROR,
    Severity.WARNING: logging.WARNING,
    Severity.RESOLVED: logging.INFO,
    Severity.INFO: logging.INFO,
}


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
    ) -> None:
        self._clock = clock
        self._policy = policy
        self._targets = targets
        self._status = status
        self._restart = restart
        self._reset = reset
        self._pending: dict[tuple[int, str], float] = {}  # (chat, target) -> confirm deadline

    async def run(self, cmd: chat.Command, chat_id: int) -> chat.Reply:
        """Answer one command from an allowed chat."""
        if cmd.name == "status":
            return chat.Reply(f"<pre>{escape_html(self._status())}</pre>")
        if cmd.name in ("start", "help"):
            return chat.Reply(escape_html(chat.HELP))
        arity = 2 if cmd.name == "silence" else 1
        if cmd.name not in ("restart", "silence", "unsilence", "reset"):
            return chat.Reply(f"unknown command /{escape_html(cmd.name)}\n{escape_html(chat.HELP)}")
        problem = chat.check_target(cmd, self._targets(), arity)
        if problem is not None:
            return chat.Reply(escape_html(problem))
        name = cmd.args[0]
        if cmd.name == "restart":
            self._pending[(chat_id, name)] = self._clock.time() + _CONFIRM_S
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
        self._reset(name)
        return chat.Reply(f"{escape_html(name)}: recovery reset, it will be retried at once")

    async def button(self, data: str, chat_id: int) -> chat.Reply:
        """A confirmation button was pressed."""
        if not data.startswith(chat.CONFIRM_PREFIX):
            return chat.Reply("unknown button")
        name = data[len(chat.CONFIRM_PREFIX) :]
        deadline = self._pending.pop((chat_id, name), None)
        if deadline is None or deadline < self._clock.time():
            return chat.Reply(f"no pending restart of {escape_html(name)} (send /restart again)")
        return chat.Reply(escape_html(await self._restart(name)))


class AlertService:
    """The outbox's delivery loop and the command polling loop."""

    def __init__(
        self,
        config: AlertsConfig,
        *,
        clock: Clock,
        outbox: Outbox,
        commands: Commands,
        host: str,
        changed: Callable[[], None],
        set_note: Callable[[str | None], None],
        events: EventSink | None = None,
    ) -> None:
        self._cfg = config
        self._events: EventSink = events or Discard()
        self._clock = clock
        self.outbox = outbox
        self._commands = commands
        self._host = host
        self._changed = changed  # state worth saving changed
        self._set_note = set_note
        self._kick = asyncio.Event()
        self._channel: TelegramChannel | None = None
        self.offset: int | None = None  # next Telegram update to read (persisted)

    def publish(self, alerts: list[Alert]) -> None:
        """Log each alert and queue it for every configured chat."""
        telegram = self._cfg.telegram
        now = self._clock.time()
        for alert in alerts:
            log.log(
                _LEVEL[alert.severity],
                "alert %s %s: %s%s",
                alert.severity.value,
                alert.target,
                alert.summary,
                f" ({alert.reason})" if alert.reason else "",
            )
            self._events.record(
                Kind.ALERT,
                f"alert {alert.severity.value}{' (reminder)' if alert.reminder else ''}: "
                f"{alert.target} {alert.summary}",
                alert.target,
                severity=alert.severity.value,
                reminder=alert.reminder,
                reason=alert.reason,
                recovery=alert.recovery,
            )
            if telegram is not None:
                text = format_html(alert, self._host)
                dropped = self.outbox.dropped
                for chat_id in telegram.chat_ids:
                    self.outbox.add(chat_id, text, now)
                if self.outbox.dropped > dropped:
                    log.warning(
                        "alert outbox full: dropped the %d oldest undelivered messages",
                        self.outbox.dropped - dropped,
                    )
        if alerts:
            self._kick.set()
            self._changed()

    async def run(self) -> None:
        """Connect (retrying) and run delivery and polling; returns if alerts cannot work."""
        telegram = self._cfg.telegram
        if telegram is None or not self._cfg.enabled:
            return
        try:
            token = telegram.read_token()
        except OSError as exc:
            self._disable(f"cannot read {telegram.token_file}: {exc.strerror}")
            return
        logs.redact(token)
        # Imported only when Telegram is configured: python-telegram-bot and httpx cost
        # about 7 MB of RSS that a supervisor without alerts should not carry.
        from supervisor.alerts.telegram import TelegramChannel

        self._channel = TelegramChannel(token, telegram.api_url, telegram.timeout_s)
        try:
            if not await self._connect():
                return
            async with asyncio.TaskGroup() as group:
                group.create_task(self._deliver())
                if telegram.commands:
                    group.create_task(self._poll())
        finally:
            await self._channel.close()

    def _disable(self, why: str) -> None:
        log.error("alerts disabled: %s", why)
        self._events.record(Kind.ALERT, f"alerts disabled: {why}")
        self._set_note(f"alerts disabled: {why}")

    async def _connect(self) -> bool:
        assert self._channel is not None
        attempt = 0
        while True:
            try:
                name = await self._channel.connect()
            except TokenRejectedError:
                self._disable("Telegram rejected the bot token (check token_file)")
                return False
            except (ChannelUnavailableError, MessageRejectedError) as exc:
                self._unreachable(str(exc))
                await asyncio.sleep(backoff(_RETRY_S, attempt))
                attempt += 1
                continue
            log.info("alerts go to Telegram as @%s", name)
            self._set_note(None)
            return True

    def _unreachable(self, why: str) -> None:
        self._set_note(f"alerts: cannot reach Telegram ({why}); {len(self.outbox)} waiting")

    async def _deliver(self) -> None:
        """Send the outbox in order, honouring retry_after and backing off on failures."""
        assert self._channel is not None
        while True:
            self._kick.clear()  # before looking: a message queued after this wakes us
            head = self.outbox.head()
            wait = None if head is None else head.next_at - self._clock.time()
            if head is None or (wait is not None and wait > 0):
                try:
                    async with asyncio.timeout(wait):
                        await self._kick.wait()
                except TimeoutError:
                    pass
                continue
            try:
                await self._channel.send(head.chat_id, head.text)
            except ChannelUnavailableError as exc:
                retry_at = self.outbox.failed(head, self._clock.time(), str(exc), exc.retry_after_s)
                log.warning(
                    "alert delivery to chat %d failed (attempt %d): %s; retrying in %.0f s",
                    head.chat_id,
                    head.attempts,
                    exc,
                    retry_at - self._clock.time(),
                )
                self._unreachable(str(exc))
                self._events.record(
                    Kind.ALERT,
                    f"alert delivery to chat {head.chat_id} failed "
                    f"(attempt {head.attempts}): {exc}",
                    result="failed",
                )
            except MessageRejectedError as exc:
                log.error("dropping an alert Telegram refused for chat %d: %s", head.chat_id, exc)
                self.outbox.drop(head)
                self._events.record(
                    Kind.ALERT, f"alert refused by Telegram: {exc}", result="refused"
                )
            except TokenRejectedError:
                self._disable("Telegram rejected the bot token (check token_file)")
                return
            else:
                self.outbox.sent(head)
                self._events.record(
                    Kind.ALERT, f"alert delivered to chat {head.chat_id}", result="delivered"
                )
                if not len(self.outbox):
                    self._set_note(None)
            self._changed()

    async def _poll(self) -> None:
        """Read commands by long polling; handle those from allowed chats."""
        assert self._channel is not None
        started = self._clock.time()
        attempt = 0
        while True:
            try:
                items = await self._channel.updates(self.offset)
            except (ChannelUnavailableError, MessageRejectedError) as exc:
                log.debug("polling Telegram: %s", exc)
                await asyncio.sleep(backoff(_RETRY_S, attempt))
                attempt += 1
                continue
            except TokenRejectedError:
                return
            attempt = 0
            for item in items:
                self.offset = item.update_id + 1
                try:
                    await self._handle(item, started)
                except Exception:  # one bad command must never stop the polling
                    log.exception("handling a command from chat %d failed", item.chat_id)
            if items:
                self._changed()

    async def _handle(self, item: Incoming, started: float) -> None:
        telegram = self._cfg.telegram
        assert telegram is not None and self._channel is not None
        kind = "button press" if item.callback_id else "message"
        if item.chat_id not in telegram.chat_ids:
            log.warning(
                "ignoring a %s from chat %d (%s): not in alerts.telegram.chat_ids",
                kind,
                item.chat_id,
                item.sender or "unknown",
            )
            return
        if item.date < started - STALE_S:
            log.info(
                "dropping a %s from chat %d queued while the supervisor was down",
                kind,
                item.chat_id,
            )
            return
        if item.callback_id:
            reply = await self._commands.button(item.callback_data, item.chat_id)
            await self._quietly(self._channel.answer(item.callback_id, html.unescape(reply.text)))
        else:
            cmd = chat.parse(item.text, self._channel.username)
            if cmd is None:
                return
            log.info("command /%s from chat %d (%s)", cmd.name, item.chat_id, item.sender)
            self._events.record(
                Kind.CHAT,
                f"/{' '.join([cmd.name, *cmd.args])} from chat {item.chat_id} "
                f"({item.sender or 'unknown'})",
                command=cmd.name,
                chat=item.chat_id,
                sender=item.sender,
            )
            reply = await self._commands.run(cmd, item.chat_id)
        await self._quietly(self._channel.send(item.chat_id, reply.text, reply.button))

    @staticmethod
    async def _quietly(call: Awaitable[None]) -> None:
        """Replies are best effort: a failed one is logged, never retried or fatal."""
        try:
            await call
        except (ChannelUnavailableError, MessageRejectedError, TokenRejectedError) as exc:
            log.warning("could not reply on Telegram: %s", exc)
