"""What the fake Telegram Bot API does, without the HTTP around it.

`BotApiState` holds Telegram's side of the bot's chats (messages sent and received, pending
updates, callback queries, the command list) and carries out each Bot API method on it, with
the checks Telegram makes. `devtools.fakes.telegram_api.FakeBotApi` serves it over HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from copy import deepcopy
from datetime import datetime

from devtools.fakes.telegram_wire import (
    CHANNEL_CHAT_ID,
    DEFAULT_USER_ID,
    ApiError,
    ChatId,
    JsonDict,
    chat_id_param,
    float_param,
    int_param,
    text_param,
)

_Method = Callable[[JsonDict], Awaitable[object]]

_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a content and reply markup of the current message"
)
_BAD_QUERY = "Bad Request: query is too old and response timeout expired or query ID is invalid"


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


class BotApiState:
    """Telegram's state for one bot, and the Bot API methods that read and change it."""

    def __init__(self, token: str, max_poll_timeout: float) -> None:
        self.token = token
        self.max_poll_timeout = max_poll_timeout
        self.sent: list[JsonDict] = []
        self.sent_at: list[float] = []  # time.time() of each entry of `sent`
        self.edited: list[JsonDict] = []
        self.callback_answers: list[JsonDict] = []
        self.commands: list[JsonDict] = []
        self.unknown_chats: set[ChatId] = set()  # getChat answers "chat not found" for these
        self._messages: dict[tuple[ChatId, int], JsonDict] = {}
        self._updates: list[JsonDict] = []
        self._callback_ids: set[str] = set()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._query_ids = itertools.count(7_000_000_001)
        self._poll_generation = 0
        self._changed = _Signal()
        self._methods = self._method_table()

    def _method_table(self) -> dict[str, _Method]:
        methods: dict[str, _Method] = {
            "getMe": self._get_me,
            "getChat": self._get_chat,
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

    @property
    def bot_user(self) -> JsonDict:
        bot_id = self.token.partition(":")[0]
        return {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": "Fake Bot",
            "username": "fake_test_bot",
        }

    @property
    def pending_updates(self) -> list[JsonDict]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return deepcopy(self._updates)

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

    # ------------------------------------------------------------------- methods

    async def _get_me(self, params: JsonDict) -> object:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_chat(self, params: JsonDict) -> object:
        chat_id = chat_id_param(params)
        if chat_id in self.unknown_chats:
            raise ApiError(400, "Bad Request: chat not found")
        return {**_chat(chat_id), "accent_color_id": 0, "max_reaction_count": 11}

    async def _send_message(self, params: JsonDict) -> object:
        chat_id = chat_id_param(params)
        text = text_param(params)
        message = self._new_message(chat_id, text, self.bot_user)
        _set_markup(message, _inline_markup(params.get("reply_markup")))
        self.sent.append({**params, "message_id": message["message_id"]})
        self.sent_at.append(time.time())
        self._changed.fire()
        return message

    async def _edit_message_text(self, params: JsonDict) -> object:
        text = text_param(params)
        if "inline_message_id" in params:
            self.edited.append(dict(params))
            return True
        message = self._editable(chat_id_param(params), int_param(params, "message_id"))
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
        offset = int_param(params, "offset", 0)
        limit = min(max(int_param(params, "limit", 100), 1), 100)
        wait = min(max(float_param(params, "timeout", 0.0), 0.0), self.max_poll_timeout)
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
