"""The Telegram Bot API's wire format, as the fake (`devtools.fakes.telegram_api`) reads and
writes it: request parameters in (query string, form or multipart, JSON), typed parameters
checked with Telegram's own 400 errors, and the error reply Telegram sends."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, NamedTuple

from aiohttp import web

JsonDict = dict[str, Any]
ChatId = int | str

DEFAULT_TOKEN = "123456:TEST-token"
DEFAULT_USER_ID = 4242
MAX_TEXT_LENGTH = 4096
CHANNEL_CHAT_ID = -1001234567890

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


async def read_params(request: web.Request) -> JsonDict:
    """The parameters of a request, from its query string and its body."""
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


def int_param(params: JsonDict, key: str, default: int | None = None) -> int:
    """An integer parameter (`default` if absent; None: required)."""
    value = params.get(key, default)
    try:
        if value is None:
            raise TypeError(key)
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f'Bad Request: invalid or missing parameter "{key}"') from exc


def float_param(params: JsonDict, key: str, default: float) -> float:
    """A number parameter (`default` if absent)."""
    try:
        return float(params.get(key, default))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f'Bad Request: invalid parameter "{key}"') from exc


def chat_id_param(params: JsonDict) -> ChatId:
    """The chat_id parameter: an integer, or a channel's "@username"."""
    value = params.get("chat_id")
    if isinstance(value, str) and value.startswith("@") and len(value) > 1:
        return value
    if value is None or value == "":
        raise ApiError(400, "Bad Request: chat_id is empty")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "Bad Request: chat not found") from exc


def text_param(params: JsonDict) -> str:
    """The text parameter, checked as Telegram checks it (empty, too long, parse_mode)."""
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if len(text.encode("utf-16-le")) // 2 > MAX_TEXT_LENGTH:
        raise ApiError(400, "Bad Request: message is too long")
    mode = params.get("parse_mode")
    if mode and str(mode).lower() not in _PARSE_MODES:
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    return text


def status_phrase(status: int) -> str:
    """The description of an error reply with this status, when none is given."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"
