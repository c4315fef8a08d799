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
* getMe, sendMessage, editMessageText, answerCallbackQuery, getUpdates (offset, limit,
  long polling, 409 Conflict when a newer getUpdates supersedes a waiting one),
  deleteWebhook (with drop_pending_updates), getWebhookInfo, setMyCommands, getMyCommands.
* The Telegram checks production code tends to trip over: empty text, text over 4096
  characters, editing to identical content ("message is not modified"), editing an unknown
  message or someone else's, an unknown or already answered callback query id.
* Faults: `fail_next` (any 4xx/5xx), `rate_limit_next` (429 with ``retry_after``), each
  optionally for one chat only (Telegram throttles per chat), and `down`/`up`, which
  really close the listening socket and open connections and later listen on the same
  port again.

What it does not fake: parsing of HTML/Markdown (``parse_mode`` is recorded but no entities
are produced and broken markup is never rejected; the length limit is applied to the raw
text, so it is stricter than Telegram for formatted text); file uploads (file parts are
recorded as ``"<file NAME>"``); webhooks, inline mode, any method not listed above (404);
``allowed_updates`` filtering; per-chat message ids (one counter for all chats); "chat not
found"; rate limits other than those injected. The wording of validation errors for
setMyCommands is an approximation.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from copy import deepcopy
from datetime import datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, NamedTuple, Self

from aiohttp import web

JsonDict = dict[str, Any]
ChatId = int | str
_Method = Callable[[JsonDict], Awaitable[object]]

DEFAULT_TOKEN = "123456:TEST-token"
DEFAULT_USER_ID = 4242
MAX_TEXT_LENGTH = 4096
CHANNEL_CHAT_ID = -1001234567890

_SHUTDOWN_GRACE_S = 0.05
_PATH = re.compile(r"/bot(?P<token>[^/]*)/(?P<method>[^/]*)")
_TOKEN_SHAPE = re.compile(r"\d+:[\w-]+")
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_PARSE_MODES = frozenset({"html", "markdown", "markdownv2"})
# Form values PTB sends raw; every other form value is JSON-decoded (PTB JSON-encodes them).
_STRING_PARAMS = frozenset(
    {
        "text",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "data",
        "url",
        "caption",
        "language_code",
        "business_connection_id",
        "message_effect_id",
        "secret_token",
    }
)
_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a content and reply markup of the current message"
)
_BAD_QUERY = "Bad Request: query is too old and response timeout expired or query ID is invalid"


class ApiCall(NamedTuple):
    """One request as it arrived: method as spelled in the path, parameters, time.monotonic()."""

    method: str
    params: JsonDict
    at: float


class ApiError(Exception):
    """A Telegram error reply: HTTP status == error_code, description, optional parameters."""

    def __init__(self, status: int, description: str, parameters: JsonDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def response(self) -> web.Response:
        body: JsonDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return web.json_response(body, status=self.status)


class _Signal:
    """Wakes every waiter whenever state changed; each waiter re-checks its own predicate."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """Whether `predicate` became true within `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            event = self._event
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                return predicate()
        return True


class FakeBotApi:
    """The Telegram Bot API on 127.0.0.1 with recording, scripted updates and faults.

    Use as ``async with FakeBotApi() as fake:`` and point PTB at ``fake.base_url``.
    """

    def __init__(self, token: str = DEFAULT_TOKEN, *, max_poll_timeout: float = 50.0) -> None:
        self.token = token
        self.max_poll_timeout = max_poll_timeout
        self.requests: list[ApiCall] = []
        self.sent: list[JsonDict] = []
        self.sent_at: list[float] = []  # time.time() of each entry of `sent`
        self.edited: list[JsonDict] = []
        self.callback_answers: list[JsonDict] = []
        self.commands: list[JsonDict] = []
        self._messages: dict[tuple[ChatId, int], JsonDict] = {}
        self._updates: list[JsonDict] = []
        self._callback_ids: set[str] = set()
        self._faults: dict[str, deque[tuple[ChatId | None, ApiError]]] = {}
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._query_ids = itertools.count(7_000_000_001)
        self._poll_generation = 0
        self._changed = _Signal()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._methods = self._method_table()

    def _method_table(self) -> dict[str, _Method]:
        methods: dict[str, _Method] = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "answerCallbackQuery": self._answer_callback_query,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
        }
        return {name.lower(): method for name, method in methods.items()}

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
        """Listen on a free port of 127.0.0.1."""
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
            await web.TCPSite(runner, "127.0.0.1", self._port).start()
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
        """``http://127.0.0.1:PORT``; stays the same across `down`/`up`."""
        if self._port == 0:
            raise RuntimeError("FakeBotApi is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``telegram.Bot(..., base_url=...)``."""
        return f"{self.url}/bot"

    @property
    def bot_user(self) -> JsonDict:
        bot_id = self.token.partition(":")[0]
        return {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": "Fake Bot",
            "username": "fake_test_bot",
        }

    # ------------------------------------------------------------------ controls

    @property
    def pending_updates(self) -> list[JsonDict]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return deepcopy(self._updates)

    def calls(self, method: str) -> list[ApiCall]:
        """The requests made to `method` (case-insensitive), in arrival order."""
        return [call for call in self.requests if call.method.lower() == method.lower()]

    def queue_message(
        self,
        chat_id: int,
        text: str,
        from_user_id: int | None = None,
        date: int | datetime | None = None,
    ) -> JsonDict:
        """Queue an incoming text message (a leading ``/command`` gets its entity); return it."""
        sender = _user(from_user_id if from_user_id is not None else _default_user_id(chat_id))
        message = self._new_message(chat_id, text, sender, date=_timestamp(date))
        if match := _COMMAND.match(text):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": match.end()}]
        return self._queue({"message": deepcopy(message)})

    def queue_callback(
        self, chat_id: int, data: str, message_id: int, from_user_id: int | None = None
    ) -> JsonDict:
        """Queue an inline-button press on `message_id`; return the update.

        The callback query id to answer is ``update["callback_query"]["id"]``.
        """
        query_id = str(next(self._query_ids))
        self._callback_ids.add(query_id)
        known = self._messages.get((chat_id, message_id))
        # An unknown message is delivered like Telegram's InaccessibleMessage (date 0).
        message = known or {"chat": _chat(chat_id), "message_id": message_id, "date": 0}
        query: JsonDict = {
            "id": query_id,
            "from": _user(from_user_id if from_user_id is not None else _default_user_id(chat_id)),
            "chat_instance": str(chat_id),
            "data": data,
            "message": deepcopy(message),
        }
        return self._queue({"callback_query": query})

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
        self._inject(method, n, ApiError(status, description or _phrase(status)), chat_id)

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
            params = await _read_params(request)
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
        self.requests.append(ApiCall(method, params, time.monotonic()))
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

    # ------------------------------------------------------------------- methods

    async def _get_me(self, params: JsonDict) -> object:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _send_message(self, params: JsonDict) -> object:
        chat_id = _chat_id(params)
        text = _text(params)
        message = self._new_message(chat_id, text, self.bot_user)
        _set_markup(message, _inline_markup(params.get("reply_markup")))
        self.sent.append({**params, "message_id": message["message_id"]})
        self.sent_at.append(time.time())
        self._changed.fire()
        return message

    async def _edit_message_text(self, params: JsonDict) -> object:
        text = _text(params)
        if "inline_message_id" in params:
            self.edited.append(dict(params))
            return True
        message = self._editable(_chat_id(params), _int(params, "message_id"))
        markup = _inline_markup(params.get("reply_markup"))
        if (text, markup) == (message["text"], message.get("reply_markup")):
            raise ApiError(400, _NOT_MODIFIED)
        message.update(text=text, edit_date=int(time.time()))
        _set_markup(message, markup)
        self.edited.append(dict(params))
        self._changed.fire()
        return deepcopy(message)

    def _editable(self, chat_id: ChatId, message_id: int) -> JsonDict:
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    async def _answer_callback_query(self, params: JsonDict) -> object:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or query_id not in self._callback_ids:
            raise ApiError(400, _BAD_QUERY)
        self._callback_ids.discard(query_id)
        self.callback_answers.append(dict(params))
        self._changed.fire()
        return True

    async def _get_updates(self, params: JsonDict) -> object:
        offset = _int(params, "offset", 0)
        limit = min(max(_int(params, "limit", 100), 1), 100)
        wait = min(max(_float(params, "timeout", 0.0), 0.0), self.max_poll_timeout)
        self._confirm(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._changed.fire()  # a waiting older poll now answers 409

        def superseded() -> bool:
            return generation != self._poll_generation

        await self._changed.wait_for(lambda: bool(self._updates) or superseded(), wait)
        if superseded():
            raise ApiError(409, _CONFLICT)
        return deepcopy(self._updates[:limit])

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    async def _delete_webhook(self, params: JsonDict) -> object:
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: JsonDict) -> object:
        return {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _set_my_commands(self, params: JsonDict) -> object:
        commands = params.get("commands")
        if not isinstance(commands, list) or not all(map(_valid_command, commands)):
            raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands = commands
        return True

    async def _get_my_commands(self, params: JsonDict) -> object:
        return deepcopy(self.commands)

    # ------------------------------------------------------------------- helpers

    def _new_message(
        self, chat_id: ChatId, text: str, sender: JsonDict, date: int | None = None
    ) -> JsonDict:
        message: JsonDict = {
            "message_id": next(self._message_ids),
            "from": sender,
            "chat": _chat(chat_id),
            "date": date if date is not None else int(time.time()),
            "text": text,
        }
        self._messages[(chat_id, message["message_id"])] = message
        return message

    def _queue(self, payload: JsonDict) -> JsonDict:
        update = {"update_id": next(self._update_ids), **payload}
        self._updates.append(update)
        self._changed.fire()
        return deepcopy(update)


async def _read_params(request: web.Request) -> JsonDict:
    params: JsonDict = {key: _decode(key, value) for key, value in request.query.items()}
    if request.content_type == "application/json":
        params.update(await _json_body(request))
        return params
    for key, value in (await request.post()).items():
        if isinstance(value, web.FileField):
            value.file.close()
            params[key] = f"<file {value.filename}>"
        else:
            params[key] = _decode(key, value if isinstance(value, str) else value.decode())
    return params


async def _json_body(request: web.Request) -> JsonDict:
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(400, "Bad Request: can't parse JSON object") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "Bad Request: JSON object expected")
    return body


def _decode(key: str, raw: str) -> object:
    if key in _STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _int(params: JsonDict, key: str, default: int | None = None) -> int:
    value = params.get(key, default)
    try:
        if value is None:
            raise TypeError(key)
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f'Bad Request: invalid or missing parameter "{key}"') from exc


def _float(params: JsonDict, key: str, default: float) -> float:
    try:
        return float(params.get(key, default))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f'Bad Request: invalid parameter "{key}"') from exc


def _chat_id(params: JsonDict) -> ChatId:
    value = params.get("chat_id")
    if isinstance(value, str) and value.startswith("@") and len(value) > 1:
        return value
    if value is None or value == "":
        raise ApiError(400, "Bad Request: chat_id is empty")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "Bad Request: chat not found") from exc


def _text(params: JsonDict) -> str:
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if len(text.encode("utf-16-le")) // 2 > MAX_TEXT_LENGTH:
        raise ApiError(400, "Bad Request: message is too long")
    mode = params.get("parse_mode")
    if mode and str(mode).lower() not in _PARSE_MODES:
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    return text


def _inline_markup(markup: object) -> JsonDict | None:
    """Messages carry only inline keyboards, like Telegram's."""
    return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None


def _set_markup(message: JsonDict, markup: JsonDict | None) -> None:
    """An edit without markup removes the keyboard, as on Telegram."""
    if markup is None:
        message.pop("reply_markup", None)
    else:
        message["reply_markup"] = markup


def _valid_command(command: object) -> bool:
    if not isinstance(command, dict):
        return False
    name, description = command.get("command"), command.get("description")
    return (
        isinstance(name, str)
        and _COMMAND_NAME.fullmatch(name) is not None
        and isinstance(description, str)
        and 1 <= len(description) <= 256
    )


def _chat(chat_id: ChatId) -> JsonDict:
    if isinstance(chat_id, str):
        return {"id": CHANNEL_CHAT_ID, "type": "channel", "title": chat_id, "username": chat_id[1:]}
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "Tester"}
    kind = "supergroup" if chat_id < -1_000_000_000_000 else "group"
    return {"id": chat_id, "type": kind, "title": "Test group"}


def _user(user_id: int) -> JsonDict:
    return {"id": user_id, "is_bot": False, "first_name": "Tester", "username": f"tester{user_id}"}


def _default_user_id(chat_id: int) -> int:
    """In a private chat the chat id is the user id."""
    return chat_id if chat_id > 0 else DEFAULT_USER_ID


def _timestamp(date: int | datetime | None) -> int | None:
    return int(date.timestamp()) if isinstance(date, datetime) else date


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"
