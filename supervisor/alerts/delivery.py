"""Alert delivery and chat commands: the policy's alerts go through the persisted outbox to
Telegram, one loop per chat, and commands from allowed chats and users come back as actions.

The alerts room's joiner. Everything here runs in background tasks: Telegram being slow,
down, throttling or misconfigured never blocks supervision or READY=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from supervisor.alerts import chat, sending
from supervisor.alerts.commands import Commands
from supervisor.alerts.outbox import Message, Outbox
from supervisor.alerts.policy import Alert, Severity, format_html
from supervisor.alerts.sending import Result
from supervisor.alerts.text import clip, with_evidence
from supervisor.config import AlertsConfig
from supervisor.errors import (
    ChannelUnavailableError,
    MessageRejectedError,
    TokenRejectedError,
)
from supervisor.happenings import AlertDelivery, AlertQueued, AlertsDisabled, ChatCommand, Emit
from supervisor.model import Clock, Incoming, backoff
from supervisor.runtime import logs, tls

if TYPE_CHECKING:
    from supervisor.alerts.telegram import TelegramChannel

log = logging.getLogger(__name__)
Evidence = tuple[str, tuple[str, ...]]  # a failure's cause in words, and its last lines
Why = Callable[[str, float], Awaitable[Evidence | None]]  # (target, incident opened) -> evidence
_FAILING = frozenset({Severity.WARNING, Severity.CRITICAL})
_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# How long a message waits for the state to reach the disk before it leaves anyway: our own
# disk's trouble (full, slow) must never hold an alert back.
_DURABLE_S = 2.0
_LEVEL = {
    Severity.CRITICAL: logging.ERROR,
    Severity.WARNING: logging.WARNING,
    Severity.RESOLVED: logging.INFO,
    Severity.INFO: logging.INFO,
}


class AlertService:
    """Delivery (one loop per chat) and command polling, rebuilt when the settings change."""

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
        emit: Emit = lambda _event: None,
        why: Why | None = None,
        durable: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._cfg = config
        self._emit = emit  # what happened, for history (this part names no destination)
        self._clock = clock
        self.outbox = outbox
        self._commands = commands
        self._host = host
        self._changed = changed  # state worth saving changed
        self._set_note = set_note
        self._why = why  # a failure's cause and last lines, waited for briefly
        self._durable = durable  # returns once the state as it is now is on disk
        self._waiting: dict[asyncio.Task[None], Alert] = {}  # alerts waiting for their cause
        self._kicks: dict[int, asyncio.Event] = {}  # per chat: something new to send
        self._reconfigured = asyncio.Event()
        self._channel: TelegramChannel | None = None
        self.offset: int | None = None  # next Telegram update to read (persisted)
        self.starts = 0  # how often delivery was (re)started: a reload shows here

    def configure(self, config: AlertsConfig) -> None:
        """New settings after a reload: if they differ, delivery and polling start again.

        A chat removed from `chat_ids` gets no more alerts (its queued ones are dropped) and
        loses its command rights; a new token or API URL is used from now on. Unchanged
        settings leave the running delivery alone.
        """
        if config == self._cfg:
            return
        self._cfg = config
        log.info("alerts: settings changed; restarting delivery and command polling")
        self._reconfigured.set()

    def publish(self, alerts: list[Alert]) -> None:
        """Log each alert and queue it for every configured chat.

        A failure waits for its cause and last lines (at most half a second, bounded by
        `why`); everything else is queued at once, unless an alert of the same target still
        waits: then right behind it (a person reads "failing" before its "resolved").
        """
        for alert in alerts:
            # Behind an alert of the same target still waiting for its cause: a "resolved"
            # decided within that wait must not reach the chat before its "failing".
            ahead = [t for t, a in self._waiting.items() if a.target == alert.target]
            failing = self._why is not None and alert.severity in _FAILING
            if failing or ahead:
                why = self._why if failing else None
                task = asyncio.get_running_loop().create_task(self._with_why(alert, why, ahead))
                self._waiting[task] = alert
                task.add_done_callback(lambda done: self._waiting.pop(done, None))
            else:
                self._queue(alert, None)

    async def _with_why(
        self, alert: Alert, why: Why | None, ahead: list[asyncio.Task[None]]
    ) -> None:
        evidence = None
        began = self._clock.monotonic()
        try:
            if why is not None:
                evidence = await why(alert.target, alert.opened_at)
        except Exception:  # our trouble must never cost the alert itself
            log.exception("%s: the cause of the failure could not be added", alert.target)
        if ahead:  # each waits at most for its own cause (bounded by `why`), in order
            await asyncio.wait(ahead)
        waited = self._clock.monotonic() - began if why is not None else None
        self._queue(alert, evidence, waited_s=waited)

    def settle(self) -> None:
        """Queue at once every alert still waiting for its cause (before the final save)."""
        waiting, self._waiting = self._waiting, {}
        for task, alert in waiting.items():
            if not task.done():  # done: it queued its alert already
                task.cancel()
                self._queue(alert, None)

    def _queue(
        self, alert: Alert, evidence: Evidence | None, waited_s: float | None = None
    ) -> None:
        # With alerts off nothing would ever deliver them: log only, queue nothing.
        telegram = self._cfg.telegram if self._cfg.enabled else None
        now = self._clock.time()
        cause, lines = evidence or ("", ())
        log.log(
            _LEVEL[alert.severity],
            "alert %s %s: %s%s%s",
            alert.severity.value,
            alert.target,
            alert.summary,
            f" ({alert.reason})" if alert.reason else "",
            f"; {cause}" if cause else "",
        )
        self._emit(
            AlertQueued(
                alert.target,
                alert.severity.value,
                alert.summary,
                alert.reminder,
                alert.reason,
                alert.recovery,
                cause=cause,
                log=tuple(lines) if evidence else None,
                waited_s=waited_s,
            )
        )
        if telegram is None:
            return
        text = format_html(alert, self._host)
        if evidence:
            text = with_evidence(text, cause, lines)
        dropped = self.outbox.dropped
        for chat_id in telegram.chat_ids:
            self.outbox.add(chat_id, text, now)
        if self.outbox.dropped > dropped:
            log.warning(
                "alert outbox full: dropped the %d oldest undelivered messages",
                self.outbox.dropped - dropped,
            )
        for kick in self._kicks.values():
            kick.set()
        self._changed()

    async def run(self) -> None:
        """Deliver and poll with the settings in force; start again when they change."""
        while True:
            self._reconfigured.clear()
            async with asyncio.TaskGroup() as group:
                serving = group.create_task(self._serve())
                await self._reconfigured.wait()
                serving.cancel()

    async def _serve(self) -> None:
        """Connect (retrying), then deliver and poll; returns if alerts cannot work."""
        telegram = self._cfg.telegram
        if telegram is None or not self._cfg.enabled:
            return
        self.starts += 1
        self._forget_removed_chats(telegram.chat_ids)
        try:
            token = telegram.read_token()
        except OSError as exc:
            self._disable(f"cannot read {telegram.token_file}: {exc.strerror}")
            return
        logs.redact(token)
        # Imported only when Telegram is configured: python-telegram-bot and httpx cost
        # about 7 MB of RSS that a supervisor without alerts should not carry.
        from supervisor.alerts.telegram import TelegramChannel

        self._channel = TelegramChannel(token, telegram.api_url, telegram.timeout_s, tls=tls.client)
        self._kicks = {chat_id: asyncio.Event() for chat_id in telegram.chat_ids}
        try:
            await self._connect()
            async with asyncio.TaskGroup() as group:
                for chat_id in telegram.chat_ids:
                    group.create_task(self._deliver(chat_id))
                if telegram.commands:
                    group.create_task(self._poll())
        except* TokenRejectedError:
            self._disable("Telegram rejected the bot token (check token_file)")
        finally:
            await self._channel.close()

    def _forget_removed_chats(self, chat_ids: list[int]) -> None:
        for chat_id, count in self.outbox.keep_only(chat_ids).items():
            log.warning(
                "dropping %d undelivered alerts for chat %d: not in alerts.telegram.chat_ids",
                count,
                chat_id,
            )
            self._changed()

    def _disable(self, why: str) -> None:
        log.error("alerts disabled: %s", why)
        self._emit(AlertsDisabled(why))
        self._set_note(f"alerts disabled: {why}")

    async def _connect(self) -> None:
        assert self._channel is not None
        attempt = 0
        while True:
            try:
                name = await self._channel.connect()
            except (ChannelUnavailableError, MessageRejectedError) as exc:
                self._set_note(f"alerts: cannot reach Telegram ({exc}); {len(self.outbox)} waiting")
                await asyncio.sleep(backoff(_RETRY_S, attempt))
                attempt += 1
                continue
            log.info("alerts go to Telegram as @%s", name)
            self._set_note(self.outbox.describe(self._clock.time()))
            return

    async def _deliver(self, chat_id: int) -> None:
        """Send one chat's queue in order; its failures and waits hold back only this chat."""
        kick = self._kicks[chat_id]
        while True:
            kick.clear()  # before looking: a message queued after this wakes us
            head = self.outbox.head(chat_id)
            wait = None if head is None else head.next_at - self._clock.time()
            if head is None or (wait is not None and wait > 0):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await kick.wait()
                continue
            if head.attempts == 0:
                # Its first try: the state that decided it (the incident, the message queued)
                # is on disk first. A supervisor killed after the send then finds the message
                # in the outbox (at worst sent again) instead of deciding the alert anew.
                await self._persist()
                if self.outbox.head(chat_id) is not head:  # dropped meanwhile (outbox full)
                    continue
            await self._send(head)
            await self._persist()  # that it went out: the window for a repeat is one write
            self._set_note(self.outbox.describe(self._clock.time()))
            self._changed()

    async def _persist(self) -> None:
        if self._durable is None:
            return
        try:
            async with asyncio.timeout(_DURABLE_S):
                await self._durable()
        except TimeoutError:
            log.warning("alerts: the state was not saved within %.0f s; sending anyway", _DURABLE_S)
        except Exception:  # our trouble must never cost the alert itself
            log.exception("alerts: saving the state before a send failed; sending anyway")

    async def _send(self, head: Message) -> None:
        """One attempt at a chat's head; a rejected token ends delivery (raised)."""
        assert self._channel is not None
        done = await sending.attempt(self._channel, self.outbox, head, self._clock)
        if done.result is Result.FAILED:
            log.warning(
                "alert delivery to chat %d failed (attempt %d): %s; retrying in %.0f s",
                head.chat_id,
                head.attempts,
                done.error,
                head.next_at - self._clock.time(),
            )
        elif done.result is Result.REFUSED:
            log.error(
                "dropping an alert Telegram refused for chat %d: %s", head.chat_id, done.error
            )
        self._emit(AlertDelivery(head.chat_id, done.result.value, head.attempts, done.error))

    async def _poll(self) -> None:
        """Read commands by long polling; handle those from allowed chats and users."""
        assert self._channel is not None
        attempt = 0
        while True:
            try:
                items = await self._channel.updates(self.offset)
            except (ChannelUnavailableError, MessageRejectedError) as exc:
                log.debug("polling Telegram: %s", exc)
                await asyncio.sleep(backoff(_RETRY_S, attempt))
                attempt += 1
                continue
            attempt = 0
            for item in items:
                self.offset = item.update_id + 1
                try:
                    await self._handle(item)
                except Exception:  # one bad command must never stop the polling
                    log.exception("handling a command from chat %d failed", item.chat_id)
            if items:
                self._changed()

    async def _handle(self, item: Incoming) -> None:
        telegram = self._cfg.telegram
        assert telegram is not None and self._channel is not None
        now = self._clock.time()
        verdict = chat.screen(item, now, telegram.chat_ids, telegram.allowed_user_ids)
        if verdict is not chat.Verdict.ACCEPT:
            await self._refuse(item, verdict, now)
        elif item.callback_id:
            reply = await self._commands.button(item.callback_data, item.chat_id, item.user_id)
            await self._quietly(self._channel.answer(item.callback_id, html.unescape(reply.text)))
            if not reply.private:
                await self._quietly(self._channel.send(item.chat_id, reply.text, reply.button))
        else:
            cmd = chat.parse(item.text, self._channel.username)
            if cmd is None:
                return
            log.info(
                "command /%s from user %d (%s) in chat %d",
                cmd.name,
                item.user_id,
                item.sender,
                item.chat_id,
            )
            said = ChatCommand(cmd.name, tuple(cmd.args), item.user_id, item.sender, item.chat_id)
            self._emit(said)
            reply = await self._commands.run(cmd, item.chat_id, item.user_id)
            await self._quietly(self._channel.send(item.chat_id, reply.text, reply.button))

    async def _refuse(self, item: Incoming, verdict: chat.Verdict, now: float) -> None:
        """Log every refusal; tell only an allowed sender whose command came too late."""
        assert self._channel is not None
        kind = "button press" if item.callback_id else "message"
        log.warning(
            "refusing a %s from user %d (%s) in chat %d: %s",
            kind,
            item.user_id,
            item.sender or "unknown",
            item.chat_id,
            verdict.value,
        )
        cmd = chat.parse(item.text, self._channel.username)
        if verdict is chat.Verdict.STALE and cmd is not None:
            age = now - item.date
            await self._quietly(
                self._channel.send(
                    item.chat_id,
                    f"/{clip(cmd.name, 64)} was not run: it reached us {age:.0f} s after it was "
                    f"sent (older than {chat.STALE_S:.0f} s). Send it again if it is still "
                    "wanted.",
                )
            )

    @staticmethod
    async def _quietly(call: Awaitable[None]) -> None:
        """Replies are best effort: a failed one is logged, never retried or fatal."""
        try:
            await call
        except (ChannelUnavailableError, MessageRejectedError, TokenRejectedError) as exc:
            log.warning("could not reply on Telegram: %s", exc)
