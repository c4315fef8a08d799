"""The Telegram adapter: python-telegram-bot's Bot behind a small interface of our own.

Callers see `Incoming` updates and three kinds of failure: `TokenRejectedError` (the token
is wrong: stop), `MessageRejectedError` (this message can never be delivered: drop it) and
`ChannelUnavailableError` (network, 5xx, 429: try again later, after `retry_after_s` if
Telegram said so). The token
never appears in what this module raises or logs, in any case or quoting.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import telegram
from telegram import error as tg_error
from telegram.constants import ParseMode
from telegram.request import BaseRequest, RequestData

from supervisor.alerts.text import fit
from supervisor.errors import (
    ChannelUnavailableError,
    MessageRejectedError,
    TokenRejectedError,
)
from supervisor.model import Incoming
from supervisor.redaction import Redactor

log = logging.getLogger(__name__)
POLL_TIMEOUT_S = 25  # long polling: one request waits this long for an update
_DEFAULT = type(BaseRequest.DEFAULT_NONE)  # "not given": the request's own timeout applies


def _seconds(value: object, default: float) -> float | None:
    """A timeout python-telegram-bot passed: the default when not given, None for none."""
    if isinstance(value, _DEFAULT):
        return default
    return None if value is None else float(value)  # type: ignore[arg-type]


# The verifying TLS context (runtime/tls.py), never aiohttp's own: the daemon imports aiohttp
# without a CA file (runtime/limits.py), and one context serves Telegram and https probes.
Tls = Callable[[], Awaitable[ssl.SSLContext]]


class AiohttpRequest(BaseRequest):
    """python-telegram-bot's requests over aiohttp, the HTTP stack the probes and the server
    use already: no second client stack (httpx's client pulls in httpcore, h11 and anyio,
    4.5 MB) and no second TLS setup (the process's one context, the system CA store)."""

    def __init__(
        self, timeout_s: float, read_timeout_s: float, *, keep_alive: bool, tls: Tls
    ) -> None:
        self._tls = tls
        self._timeout_s = timeout_s
        self._read_timeout_s = read_timeout_s
        self._keep_alive = keep_alive
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default wait for an answer (python-telegram-bot adds the long-poll time)."""
        return self._read_timeout_s

    async def initialize(self) -> None:
        """Open the session (on the event loop)."""
        if self._session is None or self._session.closed:
            # Without keep-alive, one fresh connection per request holds nothing between
            # alerts (an idle pooled one would linger, half-closed once Telegram hangs up).
            tls = await self._tls()
            connector = aiohttp.TCPConnector(limit=8, force_close=not self._keep_alive, ssl=tls)
            self._session = aiohttp.ClientSession(connector=connector)

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def do_request(  # noqa: PLR0917 (python-telegram-bot's signature)
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One request: the status and the body; our errors as python-telegram-bot's."""
        if request_data is not None and request_data.contains_files:
            raise tg_error.NetworkError("sending files is not supported here")
        await self.initialize()
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=_seconds(connect_timeout, self._timeout_s),
            sock_read=_seconds(read_timeout, self._read_timeout_s),
        )
        data = request_data.json_parameters if request_data is not None else None
        headers = {"User-Agent": self.USER_AGENT}
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout
            ) as res:
                return res.status, await res.read()
        except TimeoutError as err:
            raise tg_error.TimedOut from err
        except aiohttp.ClientError as err:
            # The URL holds the token: only the error's class and words go on (and scrubbed).
            raise tg_error.NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err


class TelegramChannel:
    """Sends messages and reads updates through the Bot API at `api_url`."""

    def __init__(self, token: str, api_url: str, timeout_s: float, *, tls: Tls) -> None:
        # PTB 22 warns on every 429 unless durations are timedeltas; we read them as such.
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        self._redactor = Redactor("<token>")
        self._redactor.add(token)
        # Alerts are minutes apart: no connection kept alive for them; the long poll keeps its.
        request = AiohttpRequest(timeout_s, timeout_s, keep_alive=False, tls=tls)
        polling = AiohttpRequest(timeout_s, timeout_s + POLL_TIMEOUT_S, keep_alive=True, tls=tls)
        self._requests = (request, polling)
        self._bot = telegram.Bot(
            token,
            base_url=f"{api_url.rstrip('/')}/bot",
            request=request,
            get_updates_request=polling,
        )
        self.username = ""

    async def connect(self) -> str:
        """Check the token with getMe; returns the bot's username."""
        async with self._errors("getMe"):
            await self._bot.initialize()
            self.username = self._bot.username or ""
        return self.username

    async def chat(self, chat_id: int) -> str:
        """Check that a chat is reachable with getChat; returns its title or name."""
        async with self._errors("getChat"):
            found = await self._bot.get_chat(chat_id)
        return found.title or found.username or found.first_name or ""

    async def send(self, chat_id: int, text: str, button: tuple[str, str] | None = None) -> None:
        """Send an HTML message, optionally with one inline button (label, callback data).

        Whatever the caller built, what goes out is within Telegram's length limit.
        """
        markup = None
        if button is not None:
            markup = telegram.InlineKeyboardMarkup(
                [[telegram.InlineKeyboardButton(button[0], callback_data=button[1])]]
            )
        async with self._errors("sendMessage"):
            await self._bot.send_message(
                chat_id,
                fit(text),
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                disable_web_page_preview=True,
            )

    async def updates(self, offset: int | None) -> list[Incoming]:
        """New messages and button presses (long polling, up to POLL_TIMEOUT_S)."""
        async with self._errors("getUpdates"):
            raw = await self._bot.get_updates(
                offset=offset, timeout=POLL_TIMEOUT_S, allowed_updates=["message", "callback_query"]
            )
        return [item for u in raw if (item := _incoming(u)) is not None]

    async def answer(self, callback_id: str, text: str) -> None:
        """Acknowledge a button press (Telegram shows the text briefly)."""
        async with self._errors("answerCallbackQuery"):
            await self._bot.answer_callback_query(callback_id, text=text[:200])

    async def close(self) -> None:
        """Release the HTTP clients."""
        try:
            await self._bot.shutdown()
        except tg_error.TelegramError as exc:
            log.debug("closing the Telegram client: %s", self._words("shutdown", exc))
        # A bot never initialized (the last word sends without getMe) closes nothing itself.
        for request in self._requests:
            await request.shutdown()

    @contextlib.asynccontextmanager
    async def _errors(self, what: str) -> AsyncIterator[None]:
        """Map python-telegram-bot's exceptions to ours, with the token scrubbed."""
        try:
            yield
        except tg_error.InvalidToken:
            raise TokenRejectedError(f"{what}: the bot token was rejected") from None
        except tg_error.RetryAfter as exc:
            raise ChannelUnavailableError(self._words(what, exc), _retry_after_s(exc)) from None
        except (tg_error.BadRequest, tg_error.Forbidden, tg_error.ChatMigrated) as exc:
            # BadRequest subclasses NetworkError: it must be caught before the catch-all.
            raise MessageRejectedError(self._words(what, exc)) from None
        except tg_error.TelegramError as exc:
            raise ChannelUnavailableError(self._words(what, exc)) from None

    def _words(self, what: str, exc: tg_error.TelegramError) -> str:
        """Never let the token out, whatever a library put in its message (or its case)."""
        return self._redactor.scrub(f"{what}: {exc.message}")


def _retry_after_s(exc: tg_error.RetryAfter) -> float:
    value = exc.retry_after  # a timedelta with PTB_TIMEDELTA set (see __init__)
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _incoming(update: telegram.Update) -> Incoming | None:
    if update.callback_query is not None:
        query = update.callback_query
        message = query.message
        if message is None:
            return None
        return Incoming(
            update.update_id,
            message.chat.id,
            message.date.timestamp(),
            callback_id=query.id,
            callback_data=query.data or "",
            sender=query.from_user.username or str(query.from_user.id),
            user_id=query.from_user.id,
        )
    message = update.message
    if message is None or message.text is None:
        return None
    who = message.from_user
    return Incoming(
        update.update_id,
        message.chat.id,
        message.date.timestamp(),
        text=message.text,
        sender=(who.username or str(who.id)) if who else "",
        user_id=who.id if who else 0,
    )
