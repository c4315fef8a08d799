"""The Telegram Bot API fake, driven by the real python-telegram-bot client over HTTP.

PTB strips Telegram's "Bad Request: " prefix and capitalizes the rest, hence the
``match="Message is too long"`` for Telegram's "Bad Request: message is too long".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import telegram
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, CommandHandler, ContextTypes

from devtools.fakes.telegram_api import FakeBotApi

CHAT = 777
KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("Restart", callback_data="restart")]])


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 emits PTBDeprecationWarning whenever RetryAfter.retry_after is read, and its own
    # RetryAfter.__init__ reads it: under filterwarnings=error a 429 would surface as that
    # warning instead of RetryAfter. Opting in to the v23 behaviour (a timedelta) removes it.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


@pytest.fixture
async def bot(fake: FakeBotApi) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(fake.token, base_url=fake.base_url) as client:
        yield client


async def test_get_me(bot: telegram.Bot, fake: FakeBotApi) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "fake_test_bot")
    assert [call.method for call in fake.requests] == ["getMe", "getMe"]  # initialize + ours


async def test_send_message_is_recorded_and_parsed(bot: telegram.Bot, fake: FakeBotApi) -> None:
    first = await bot.send_message(CHAT, "<b>down</b>", parse_mode="HTML", reply_markup=KEYBOARD)
    second = await bot.send_message(CHAT, "plain")

    assert second.message_id > first.message_id
    assert (first.chat.id, first.text, first.reply_markup) == (CHAT, "<b>down</b>", KEYBOARD)
    assert first.from_user is not None and first.from_user.id == bot.id
    sent = fake.sent[0]
    assert (sent["chat_id"], sent["text"], sent["parse_mode"]) == (CHAT, "<b>down</b>", "HTML")
    assert sent["reply_markup"] == KEYBOARD.to_dict()
    assert sent["message_id"] == first.message_id
    assert "parse_mode" not in fake.sent[1]


@pytest.mark.parametrize("token", ["999:wrong-token", "not-a-token"])
async def test_wrong_token_raises_invalid_token(fake: FakeBotApi, token: str) -> None:
    # 401 for a well-formed unknown token, 404 for a malformed one: PTB maps both the same.
    with pytest.raises(InvalidToken):
        async with telegram.Bot(token, base_url=fake.base_url):
            pass
    assert fake.calls("getMe")[0].method == "getMe"


async def test_unknown_method_is_404(bot: telegram.Bot) -> None:
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("frobnicate")


async def test_server_error_then_recovery(bot: telegram.Bot, fake: FakeBotApi) -> None:
    fake.fail_next(1)
    with pytest.raises(NetworkError, match="Internal Server Error") as info:
        await bot.send_message(CHAT, "lost")
    assert type(info.value) is NetworkError

    await bot.send_message(CHAT, "delivered")
    assert [m["text"] for m in fake.sent] == ["delivered"]
    assert len(fake.calls("sendMessage")) == 2


async def test_client_error_status_maps_to_ptb_exception(
    bot: telegram.Bot, fake: FakeBotApi
) -> None:
    fake.fail_next(1, status=403, description="Forbidden: bot was blocked by the user")
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(CHAT, "hello?")


async def test_rate_limit_raises_retry_after(bot: telegram.Bot, fake: FakeBotApi) -> None:
    fake.rate_limit_next(2, retry_after=7)
    for _ in range(2):
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(CHAT, "flood")
        assert info.value.retry_after == timedelta(seconds=7)

    await bot.send_message(CHAT, "after the flood")
    calls = fake.calls("sendMessage")
    assert len(calls) == 3 and calls[0].at <= calls[1].at <= calls[2].at
    assert len(fake.sent) == 1


async def test_down_refuses_connections_and_up_serves_the_same_url(
    bot: telegram.Bot, fake: FakeBotApi
) -> None:
    await bot.send_message(CHAT, "before")  # leaves a keep-alive connection in PTB's pool
    url = fake.url
    await fake.down()
    assert not fake.is_up
    with pytest.raises(NetworkError) as info:
        await bot.send_message(CHAT, "while down")
    assert not isinstance(info.value, TimedOut)
    assert "ConnectError" in str(info.value)

    await fake.up()
    assert fake.url == url
    await bot.send_message(CHAT, "after")
    assert [m["text"] for m in fake.sent] == ["before", "after"]


async def test_down_cuts_a_waiting_long_poll(bot: telegram.Bot, fake: FakeBotApi) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_for_request("getUpdates")
    started = time.monotonic()
    await fake.down()
    with pytest.raises(NetworkError):
        await poll
    assert time.monotonic() - started < 1


async def test_get_updates_offsets_confirm_and_drop(bot: telegram.Bot, fake: FakeBotApi) -> None:
    first = fake.queue_message(CHAT, "hello")
    fake.queue_message(CHAT, "/status@fake_test_bot now", from_user_id=42)
    fake.queue_message(-100123, "in a group")

    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [first["update_id"] + i for i in range(3)]
    command = updates[1].message
    assert command is not None and command.text == "/status@fake_test_bot now"
    assert command.from_user is not None and command.from_user.id == 42
    assert command.parse_entities(["bot_command"]).popitem()[1] == "/status@fake_test_bot"
    assert updates[2].effective_chat is not None and updates[2].effective_chat.type == "group"

    again = await bot.get_updates(limit=1)  # nothing confirmed yet
    assert [u.update_id for u in again] == [updates[0].update_id]

    rest = await bot.get_updates(offset=updates[1].update_id)  # confirms the first
    assert [u.update_id for u in rest] == [u.update_id for u in updates[1:]]
    assert [u["update_id"] for u in fake.pending_updates] == [u.update_id for u in updates[1:]]

    assert await bot.get_updates(offset=updates[-1].update_id + 1) == ()
    assert fake.pending_updates == []


async def test_long_poll_returns_as_soon_as_a_message_is_queued(
    bot: telegram.Bot, fake: FakeBotApi
) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_for_request("getUpdates")  # the fake is now holding the long poll
    fake.queue_message(CHAT, "wake up")

    updates = await poll
    assert time.monotonic() - started < 1
    assert [u.message.text for u in updates if u.message] == ["wake up"]


async def test_long_poll_without_updates_waits_for_its_timeout(bot: telegram.Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=timedelta(milliseconds=200)) == ()
    assert 0.2 <= time.monotonic() - started < 1


async def test_a_second_poller_terminates_the_first_with_conflict(
    bot: telegram.Bot, fake: FakeBotApi
) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_for_request("getUpdates")
    async with telegram.Bot(fake.token, base_url=fake.base_url) as other:
        assert await other.get_updates() == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates"):
        await first


async def test_callback_query_answer_and_edit(bot: telegram.Bot, fake: FakeBotApi) -> None:
    message = await bot.send_message(CHAT, "trader is down", reply_markup=KEYBOARD)
    fake.queue_callback(CHAT, "restart", message.message_id)

    (update,) = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.data == "restart"
    assert query.message is not None and query.message.message_id == message.message_id
    assert await query.answer("restarting") is True
    assert fake.callback_answers == [{"callback_query_id": query.id, "text": "restarting"}]
    with pytest.raises(BadRequest, match="query id is invalid"):
        await query.answer("twice")

    edited = await bot.edit_message_text("restarting trader", CHAT, message.message_id)
    assert isinstance(edited, telegram.Message)
    assert (edited.text, edited.reply_markup, edited.edit_date is not None) == (
        "restarting trader",
        None,  # an edit without markup drops the keyboard, as on Telegram
        True,
    )
    assert fake.edited[0]["text"] == "restarting trader"
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("restarting trader", CHAT, message.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("?", CHAT, 999_999)


async def test_callback_on_an_unknown_message_is_inaccessible(
    bot: telegram.Bot, fake: FakeBotApi
) -> None:
    fake.queue_callback(CHAT, "ack", message_id=31337)
    (update,) = await bot.get_updates()
    assert update.callback_query is not None and update.callback_query.message is not None
    # PTB parses it as a Message with date 0 rather than as InaccessibleMessage.
    assert not update.callback_query.message.is_accessible


async def test_text_validation(bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(CHAT, "   ")
    await bot.send_message(CHAT, "x" * 4096)


async def test_commands_and_webhook_housekeeping(bot: telegram.Bot, fake: FakeBotApi) -> None:
    assert await bot.set_my_commands([BotCommand("status", "Show status")]) is True
    assert fake.commands == [{"command": "status", "description": "Show status"}]
    assert await bot.get_my_commands() == (BotCommand("status", "Show status"),)

    fake.queue_message(CHAT, "stale")
    assert (await bot.get_webhook_info()).pending_update_count == 1
    assert await bot.delete_webhook(drop_pending_updates=True) is True
    assert fake.pending_updates == []


async def test_wait_for_messages(bot: telegram.Bot, fake: FakeBotApi) -> None:
    with pytest.raises(AssertionError, match=r"expected at least 1 sent message.*got 0"):
        await fake.wait_for_messages(1, timeout=0.05)

    sender = asyncio.create_task(bot.send_message(CHAT, "async hello"))
    messages = await fake.wait_for_messages(1)
    assert messages[0]["text"] == "async hello"
    await sender


async def test_ptb_application_polls_and_replies(fake: FakeBotApi) -> None:
    async def status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("all green")

    app = Application.builder().token(fake.token).base_url(fake.base_url).build()
    app.add_handler(CommandHandler("status", status))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(timeout=timedelta(seconds=5))
        await app.start()
        fake.queue_message(CHAT, "/status")
        (reply,) = await fake.wait_for_messages(1)
        await app.updater.stop()
        await app.stop()

    assert (reply["chat_id"], reply["text"]) == (CHAT, "all green")
    assert fake.calls("deleteWebhook")  # the Updater's bootstrap
    assert fake.pending_updates == []  # confirmed by the Updater's final getUpdates
