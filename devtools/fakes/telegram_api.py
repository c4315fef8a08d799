"""A local fake of the Telegram Bot API that speaks real HTTP.

`FakeBotApi` serves the Bot API wire protocol from an aiohttp server on 127.0.0.1 (a free
port), so an unmodified ``telegram.Bot(token, base_url=fake.base_url)`` from
python-telegram-bot 22 talks to it exactly as it talks to api.telegram.org.

What it fakes, in Telegram's format:

* ``POST`` or ``GET /bot<token>/<method>``. Parameters come from the query string and from a
  form-urlencoded body (what PTB sends: strings raw, everything else JSON-encoded), a
  multipart body or a JSON body. Method names are case-insensitive, as on Telegram.
* Replies ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
  "description": "...", "parameters": {...}}`` with HTTP status N.
* A different but well-formed token gets 401 Unauthorized, a malformed one 404, an unknown
  method 404 (PTB turns all three into ``telegram.error.InvalidToken``).
* getMe, getChat ("chat not found" for `unknown_chats`), sendMessage, editMessageText,
  answerCallbackQuery, getUpdates (offset, limit,
  long polling, 409 Conflict when a newer getUpdates supersedes a waiting one),
  deleteWebhook (with drop_pending_updates), getWebhookInfo, setMyCommands, getMyCommands.
* The Telegram checks production code tends to trip over: empty text, text over 4096
  characters, editing to identical content ("message is not modified"), editing an unknown
  message or someone else's, an unknown or already answered callback query id.
* Faults: `fail_next` (any 4xx/5xx), `rate_limit_next` (429 with ``retry_after``), each
  optionally for one chat only (Telegram throttles per chat), and `down`/`up`, which
  really close the listening socket and open connections and later listen on the same
  port again.
* TLS: with `tls` (a server context) it serves https, for tests of the client's verification.

What it does not fake: parsing of HTML/Markdown (``parse_mode`` is recorded but no entities
are produced and broken markup is never rejected; the length limit is applied to the raw
text, so it is stricter than Telegram for formatted text); file uploads (file parts are
recorded as ``"<file NAME>"``); webhooks, inline mode, any method not listed above (404);
``allowed_updates`` filtering; per-chat message ids (one counter for all chats); "chat not
found" except from getChat; rate limits other than those injected. The wording of validation
errors for setMyCommands is an approximation.

This module serves it and holds the test's controls; what each method does to the chats is in
`devtools.fakes.telegram_state`, the wire format (parameters, error replies) in
`devtools.fakes.telegram_wire`.
"""

from __future__ import annotations

import re
import ssl
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web

from devtools.fakes.telegram_state import BotApiState
from devtools.fakes.telegram_wire import (
    DEFAULT_TOKEN,
    ApiCall,
    ApiError,
    ChatId,
    JsonDict,
    read_params,
    status_phrase,
)

_SHUTDOWN_GRACE_S = 0.05
_PATH = re.compile(r"/bot(?P<token>[^/]*)/(?P<method>[^/]*)")
_TOKEN_SHAPE = re.compile(r"\d+:[\w-]+")


class FakeBotApi(BotApiState):
    """The Telegram Bot API on 127.0.0.1 with recording, scripted updates and faults.

    Use as ``async with FakeBotApi() as fake:`` and point PTB at ``fake.base_url``.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        max_poll_timeout: float = 50.0,
        tls: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(token, max_poll_timeout)
        self._tls = tls
        self.requests: list[ApiCall] = []
        self._faults: dict[str, deque[tuple[ChatId | None, ApiError]]] = {}
        self._runner: web.AppRunner | None = None
        self._port = port  # 0: a free one, chosen at start
        # Called with each request as it arrives, before it is answered: what a client's
        # world looked like at the moment Telegram had the message (a test reads a file).
        self.on_request: Callable[[ApiCall], object] | None = None

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on 127.0.0.1, on the port given (a free one if none was)."""
        if self._runner is not None:
            raise RuntimeError("FakeBotApi is already running")
        await self._listen()

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        await self.down()

    async def down(self) -> None:
        """Make Telegram unreachable: close the socket and all connections (in-flight too).

        New requests get "connection refused"; a waiting long poll is cut off.
        """
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def up(self) -> None:
        """Listen again on the same port (and URL) as before `down`."""
        if self._port == 0:
            raise RuntimeError("FakeBotApi was never started")
        if self._runner is None:
            await self._listen()

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self._port, ssl_context=self._tls).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner

    @property
    def is_up(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (https with `tls`); stays the same across `down`/`up`."""
        if self._port == 0:
            raise RuntimeError("FakeBotApi is not started")
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``telegram.Bot(..., base_url=...)``."""
        return f"{self.url}/bot"

    # ------------------------------------------------------------------ controls

    def calls(self, method: str) -> list[ApiCall]:
        """The requests made to `method` (case-insensitive), in arrival order."""
        return [call for call in self.requests if call.method.lower() == method.lower()]

    def fail_next(
        self,
        n: int,
        status: int = 500,
        description: str | None = None,
        method: str = "sendMessage",
        chat_id: ChatId | None = None,
    ) -> None:
        """Answer the next `n` calls of `method` (to `chat_id`, if given) with `status`."""
        if not 400 <= status <= 599:
            raise ValueError(f"not an error status: {status}")
        self._inject(method, n, ApiError(status, description or status_phrase(status)), chat_id)

    def rate_limit_next(
        self,
        n: int,
        retry_after: int,
        method: str = "sendMessage",
        chat_id: ChatId | None = None,
    ) -> None:
        """Answer the next `n` calls of `method` (to `chat_id`, if given) with 429."""
        description = f"Too Many Requests: retry after {retry_after}"
        error = ApiError(429, description, {"retry_after": retry_after})
        self._inject(method, n, error, chat_id)

    def _inject(self, method: str, n: int, error: ApiError, chat_id: ChatId | None) -> None:
        self._faults.setdefault(method.lower(), deque()).extend([(chat_id, error)] * n)

    def _fault(self, method: str, params: JsonDict) -> ApiError | None:
        """The first injected fault that applies to this call, taken off its queue."""
        faults = self._faults.get(method.lower(), deque())
        for i, (chat_id, error) in enumerate(faults):
            if chat_id is None or str(params.get("chat_id")) == str(chat_id):
                del faults[i]
                return error
        return None

    def pending_faults(self, method: str = "sendMessage") -> int:
        """How many injected errors of `method` have not been answered yet."""
        return len(self._faults.get(method.lower(), ()))

    def clear_faults(self) -> None:
        """Forget every injected error not answered yet."""
        self._faults.clear()

    # A timeout parameter on purpose: tests want a clear AssertionError, not a bare TimeoutError.
    async def wait_for_messages(self, n: int, timeout: float = 5.0) -> list[JsonDict]:  # noqa: ASYNC109
        """Wait until at least `n` messages were sent; return all sent so far."""
        if not await self._changed.wait_for(lambda: len(self.sent) >= n, timeout):
            texts = [message.get("text") for message in self.sent]
            raise AssertionError(
                f"expected at least {n} sent message(s) within {timeout}s, "
                f"got {len(self.sent)}: {texts!r}"
            )
        return list(self.sent)

    async def wait_for_request(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 (see wait_for_messages)
    ) -> ApiCall:
        """Wait until `method` was requested `count` times; return that request.

        The request is logged as it arrives, before it is handled: for getUpdates the long
        poll is already waiting when this returns (no await happens in between).
        """
        if not await self._changed.wait_for(lambda: len(self.calls(method)) >= count, timeout):
            raise AssertionError(
                f"expected at least {count} {method} request(s) within {timeout}s, "
                f"got {len(self.calls(method))}; all requests: {[c.method for c in self.requests]}"
            )
        return self.calls(method)[count - 1]

    # ---------------------------------------------------------------- HTTP layer

    async def _handle(self, request: web.Request) -> web.Response:
        match = _PATH.fullmatch(request.path)
        method = match["method"] if match else request.path
        try:
            params = await read_params(request)
        except ApiError as error:
            self._log(method, {})
            return error.response()
        self._log(method, params)
        try:
            if match is None:
                raise ApiError(404, "Not Found")
            result = await self._call(match["token"], method, params)
        except ApiError as error:
            return error.response()
        return web.json_response({"ok": True, "result": result})

    def _log(self, method: str, params: JsonDict) -> None:
        call = ApiCall(method, params, time.monotonic())
        self.requests.append(call)
        if self.on_request is not None:
            self.on_request(call)
        self._changed.fire()

    async def _call(self, token: str, method: str, params: JsonDict) -> object:
        if token != self.token:
            # Telegram: 401 for a well-formed token it does not know, 404 for a malformed one.
            if _TOKEN_SHAPE.fullmatch(token):
                raise ApiError(401, "Unauthorized")
            raise ApiError(404, "Not Found")
        handler = self._methods.get(method.lower())
        if handler is None:
            raise ApiError(404, "Not Found")
        if fault := self._fault(method, params):
            raise fault
        return await handler(params)
