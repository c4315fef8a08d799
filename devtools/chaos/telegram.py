"""The fake Telegram Bot API (`devtools.fakes.telegram_api`) on its own thread and event loop,
so the synchronous chaos run can take it down, bring it up, make it answer 429 and read what
it received."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from devtools.chaos.record import Message
from devtools.fakes.telegram_api import FakeBotApi

T = TypeVar("T")
_CALL_TIMEOUT_S = 10.0


class BotThread:
    """A FakeBotApi served from a background thread; every method is safe to call from others."""

    def __init__(self) -> None:
        self.fake = FakeBotApi()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-bot-api")
        self._thread.daemon = True

    def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._thread.start()
        self._run(self.fake.start)

    @property
    def url(self) -> str:
        """The `api_url` to give the supervisor (the same across down/up)."""
        return self.fake.url

    @property
    def token(self) -> str:
        """The token the fake accepts."""
        return self.fake.token

    def down(self) -> None:
        """Stop answering: the port is closed, connections are cut."""
        self._run(self.fake.down)

    def up(self) -> None:
        """Answer again on the same port."""
        self._run(self.fake.up)

    def rate_limit(self, n: int, retry_after: int) -> None:
        """The next `n` sendMessage calls get 429 with `retry_after`."""
        self._call(lambda: self.fake.rate_limit_next(n, retry_after))

    def pending_429(self) -> int:
        """Injected 429s not answered yet."""
        return self._call(lambda: self.fake.pending_faults("sendMessage"))

    def command(self, chat_id: int, text: str) -> None:
        """A message from `chat_id` for the bot to read (a chat command)."""
        self._call(lambda: self.fake.queue_message(chat_id, text))

    def clear_429(self) -> None:
        """Forget the injected 429s nobody met."""
        self._call(self.fake.clear_faults)

    def messages(self) -> list[Message]:
        """Every message accepted so far, in order."""

        def read() -> list[Message]:
            pairs = zip(self.fake.sent, self.fake.sent_at, strict=True)
            return [Message(at, int(m["chat_id"]), str(m["text"])) for m, at in pairs]

        return self._call(read)

    def close(self) -> None:
        """Stop the server and the thread (idempotent)."""
        if not self._thread.is_alive():
            return
        self._run(self.fake.stop)
        self._run(_cancel_the_rest)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CALL_TIMEOUT_S)
        self._loop.close()

    def _run(self, coro: Callable[[], Awaitable[T]]) -> T:
        async def wrapped() -> T:
            return await coro()

        future = asyncio.run_coroutine_threadsafe(wrapped(), self._loop)
        return future.result(_CALL_TIMEOUT_S)

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the fake's loop, so it never reads state half-changed."""

        async def wrapped() -> T:
            return fn()

        return self._run(wrapped)


async def _cancel_the_rest() -> None:
    """Cancel and await what the server left running (handlers of cut connections)."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
