"""Alert delivery and chat commands against the fake Bot API over real HTTP, with a fake clock.

The service runs as the daemon runs it (`AlertService.run`); only the daemon's own actions
(restart, reset, the status table) are plain callables that record what they were asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest

from devtools.fakes.telegram_api import FakeBotApi
from supervisor.alerts.commands import Commands
from supervisor.alerts.delivery import AlertService
from supervisor.alerts.outbox import Outbox
from supervisor.alerts.policy import Alert, AlertPolicy, Severity
from supervisor.alerts.telegram import TelegramChannel
from supervisor.config import AlertsConfig, Secret, TelegramConfig
from supervisor.errors import MessageRejectedError
from supervisor.model import Hold
from supervisor.runtime import tls
from tests.clock import FakeClock
from tests.polling import until

CHAT_A, CHAT_B, GROUP = 111, 222, -100200300
ALICE, BOB = 5001, 5002


@dataclass
class Rig:
    """A running AlertService and what the daemon's callables were asked to do."""

    clock: FakeClock
    service: AlertService = field(init=False)
    notes: list[str | None] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)
    holds: list[tuple[str, float | None, str, str]] = field(default_factory=list)
    released: list[tuple[str, str]] = field(default_factory=list)
    status: str = "trader  pass"

    def note(self) -> str:
        return self.notes[-1] if self.notes and self.notes[-1] else ""

    def hold(self, name: str, for_s: float | None, reason: str, by: str) -> Hold:
        self.holds.append((name, for_s, reason, by))
        return Hold(until=self.clock.time() + (for_s or 1800), reason=reason, by=by)

    def release(self, name: str, by: str) -> Hold | None:
        self.released.append((name, by))
        return Hold(until=self.clock.time()) if self.holds else None


def alerts_config(fake: FakeBotApi, chats: list[int], **telegram: Any) -> AlertsConfig:
    telegram = {"api_url": fake.url, "timeout_s": 3, **telegram}
    return AlertsConfig(
        telegram=TelegramConfig(token=Secret(fake.token), chat_ids=chats, **telegram)
    )


def alert(clock: FakeClock, name: str, reason: str = "") -> Alert:
    return Alert(
        key=f"{name}:health",
        target=name,
        severity=Severity.WARNING,
        summary="failing",
        reason=reason,
        at=clock.time(),
    )


@contextlib.asynccontextmanager
async def serving(
    config: AlertsConfig, durable: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[Rig]:
    # Starting at the real time (whole seconds, as message dates are): the fake Bot API dates
    # its own messages (the prompt a button press refers to) by the real clock.
    rig = Rig(FakeClock(float(int(time.time()))))

    async def restart(name: str) -> str:
        rig.restarts.append(name)
        return f"restart {name}: done"

    commands = Commands(
        clock=rig.clock,
        policy=AlertPolicy(config, rig.clock, {}),
        targets=lambda: ["trader", "dashboard"],
        status=lambda: rig.status,
        restart=restart,
        reset=lambda name: True,
        hold=rig.hold,
        release=rig.release,
    )
    rig.service = AlertService(
        config,
        clock=rig.clock,
        outbox=Outbox(),
        commands=commands,
        host="box",
        changed=lambda: None,
        set_note=rig.notes.append,
        durable=durable,
    )
    task = asyncio.create_task(rig.service.run())
    try:
        yield rig
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def texts(fake: FakeBotApi, chat_id: int) -> list[str]:
    return [str(m["text"]) for m in fake.sent if m["chat_id"] == chat_id]


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


# -- delivery -------------------------------------------------------------------------------


async def test_a_throttled_chat_does_not_hold_back_the_others(fake: FakeBotApi) -> None:
    fake.rate_limit_next(5, retry_after=3600, chat_id=CHAT_A)
    async with serving(alerts_config(fake, [CHAT_A, CHAT_B])) as rig:
        rig.service.publish([alert(rig.clock, "trader")])
        rig.service.publish([alert(rig.clock, "dashboard")])
        await fake.wait_for_messages(2)
        assert texts(fake, CHAT_A) == []
        first, second = texts(fake, CHAT_B)
        assert "trader" in first and "dashboard" in second  # in order within the chat
        await until(lambda: "for chat 111" in rig.note(), 5, "the wait named in /health")
        assert len(fake.calls("sendMessage")) == 3  # chat A was tried once, and waits


async def test_the_state_is_saved_before_a_message_leaves_and_after(fake: FakeBotApi) -> None:
    sent_when_saved: list[int] = []

    async def durable() -> None:
        sent_when_saved.append(len(fake.sent))

    async with serving(alerts_config(fake, [CHAT_A]), durable) as rig:
        rig.service.publish([alert(rig.clock, "trader")])
        await fake.wait_for_messages(1)
        await until(lambda: len(sent_when_saved) == 2, 5, "the save after the send")
    assert sent_when_saved == [0, 1]


@pytest.mark.parametrize("trouble", ["hangs", "raises"])
async def test_a_state_save_in_trouble_never_holds_an_alert_back(
    fake: FakeBotApi, trouble: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def durable() -> None:
        if trouble == "raises":
            raise OSError(28, "No space left on device")
        await asyncio.Event().wait()  # a disk that never answers

    async with serving(alerts_config(fake, [CHAT_A]), durable) as rig:
        rig.service.publish([alert(rig.clock, "trader")])
        await fake.wait_for_messages(1, timeout=10)  # after at most 2 s of waiting
    assert "sending anyway" in caplog.text


async def test_an_hour_long_retry_after_is_capped_and_retried(fake: FakeBotApi) -> None:
    fake.rate_limit_next(1, retry_after=3600, chat_id=CHAT_A)
    async with serving(alerts_config(fake, [CHAT_A])) as rig:
        rig.service.publish([alert(rig.clock, "trader")])
        await until(lambda: "asked us to wait 3600 s" in rig.note(), 5, "the wait in /health")
        assert "(we wait at most 300 s) for chat 111; next try in 300 s" in rig.note()
        assert "; 1 waiting" in rig.note()
        rig.clock.advance(300)
        rig.service.publish([alert(rig.clock, "dashboard")])  # wakes the chat's loop
        await fake.wait_for_messages(2)
        first, second = texts(fake, CHAT_A)
        assert "trader" in first and "dashboard" in second
        await until(lambda: rig.notes[-1] is None, 5, "the note cleared")


async def test_every_message_sent_fits_telegrams_limit(fake: FakeBotApi) -> None:
    # The fake rejects text over 4,096 characters as Telegram does ("message is too long").
    config = alerts_config(fake, [CHAT_A])
    async with serving(config) as rig:
        rig.status = "trader  fail  " + "x" * 10_000
        await fake.wait_for_request("getUpdates")
        fake.queue_message(CHAT_A, "/status", date=int(rig.clock.time()))
        rig.service.publish([alert(rig.clock, "trader", reason="<&>" * 5000)])
        await fake.wait_for_messages(2)
        assert all(len(t) <= 4096 for t in texts(fake, CHAT_A))
        assert any(t.startswith("<pre>trader  fail  xxx") for t in texts(fake, CHAT_A))
        assert any("why: &lt;&amp;&gt;" in t for t in texts(fake, CHAT_A))


async def test_the_channel_scrubs_a_lowercased_token_from_errors(fake: FakeBotApi) -> None:
    # Telegram names the bot in some errors; python-telegram-bot then capitalizes the text,
    # which lowercases the token's secret half.
    fake.fail_next(1, 400, description=f"Bad Request: chat not found for bot{fake.token}")
    channel = TelegramChannel(fake.token, fake.url, 3, tls=tls.client)
    await channel.connect()
    try:
        with pytest.raises(MessageRejectedError) as caught:
            await channel.send(CHAT_A, "hello")
    finally:
        await channel.close()
    words = str(caught.value)
    assert words.startswith("sendMessage: Chat not found for bot")
    assert fake.token.split(":")[1].lower() not in words.lower()


def connections_to(port: int) -> int:
    """This process's open TCP connections to 127.0.0.1:`port` (client ends only)."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def test_a_sent_message_leaves_no_connection_open(fake: FakeBotApi) -> None:
    # Alerts are minutes apart. A kept-alive connection would sit idle between them (httpx
    # drops an expired one only when it is next used): a socket held for hours, found by the
    # chaos run as one descriptor more at the end of a life than at its start.
    port = int(fake.url.rsplit(":", 1)[1])
    channel = TelegramChannel(fake.token, fake.url, 3, tls=tls.client)
    try:
        await channel.connect()
        for text in ("one", "two"):
            await channel.send(CHAT_A, text)
            await until(lambda: connections_to(port) == 0, 2.0, "the connection to close")
    finally:
        await channel.close()
    assert texts(fake, CHAT_A) == ["one", "two"]


# -- commands -------------------------------------------------------------------------------


async def test_only_allowed_users_may_command(
    fake: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "supervisor.alerts")
    config = alerts_config(fake, [GROUP], allowed_user_ids=[ALICE])
    async with serving(config) as rig:
        now = int(rig.clock.time())
        await fake.wait_for_request("getUpdates")
        fake.queue_message(GROUP, "/status", from_user_id=BOB, date=now)
        fake.queue_message(GROUP, "/status", from_user_id=ALICE, date=now)
        await fake.wait_for_messages(1)
        assert texts(fake, GROUP) == ["<pre>trader  pass</pre>"]  # Alice's only
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refusing")]
    assert refused == [
        f"refusing a message from user {BOB} (tester{BOB}) in chat {GROUP}: "
        "user not in alerts.telegram.allowed_user_ids"
    ]


async def test_a_restart_is_confirmed_only_by_whoever_asked(
    fake: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(alerts_config(fake, [GROUP])) as rig:
        now = int(rig.clock.time())
        await fake.wait_for_request("getUpdates")
        fake.queue_message(GROUP, "/restart trader", from_user_id=ALICE, date=now)
        [prompt] = await fake.wait_for_messages(1)
        assert "Press the button" in str(prompt["text"])
        fake.queue_callback(GROUP, "restart:trader", int(prompt["message_id"]), BOB)
        await until(lambda: len(fake.callback_answers) == 1, 5, "Bob's press answered")
        assert rig.restarts == []
        assert fake.callback_answers[0]["text"] == (
            "Only whoever asked for this restart can confirm it."
        )
        assert len(fake.sent) == 1  # the refusal went to Bob alone, not to the group
        fake.queue_callback(GROUP, "restart:trader", int(prompt["message_id"]), ALICE)
        await fake.wait_for_messages(2)
        assert rig.restarts == ["trader"]
        assert texts(fake, GROUP)[1] == "restart trader: done"
    assert any(
        f"from user {BOB} in chat {GROUP}: asked for by user {ALICE}" in r.getMessage()
        for r in caplog.records
    )


async def test_hold_and_release_from_the_chat_name_the_user(fake: FakeBotApi) -> None:
    async with serving(alerts_config(fake, [GROUP], allowed_user_ids=[ALICE])) as rig:
        now = int(rig.clock.time())
        await fake.wait_for_request("getUpdates")
        fake.queue_message(GROUP, "/hold trader 20m deploy v2", from_user_id=ALICE, date=now)
        fake.queue_message(GROUP, "/hold dashboard", from_user_id=ALICE, date=now)
        fake.queue_message(GROUP, "/hold trader 25h", from_user_id=ALICE, date=now)
        fake.queue_message(GROUP, "/hold trader 5m", from_user_id=BOB, date=now)
        fake.queue_message(GROUP, "/release trader", from_user_id=ALICE, date=now)
        await fake.wait_for_messages(4)
        assert rig.holds == [
            ("trader", 1200.0, "deploy v2", f"chat:{ALICE}"),
            ("dashboard", None, "", f"chat:{ALICE}"),
        ]
        assert rig.released == [("trader", f"chat:{ALICE}")]
        said = texts(fake, GROUP)
        assert said[0].startswith("trader: held until ")
        assert "at most 24h" in said[2]
        assert said[3] == "trader: released"


async def test_a_command_that_waited_out_an_outage_is_not_run(fake: FakeBotApi) -> None:
    async with serving(alerts_config(fake, [CHAT_A])) as rig:
        sent_at = int(rig.clock.time()) + 5  # after we started polling
        await fake.wait_for_request("getUpdates")
        rig.clock.advance(600)  # Telegram was unreachable for ten minutes
        fake.queue_message(CHAT_A, "/restart trader", date=sent_at)
        fake.queue_message(CHAT_A, "/status", date=int(rig.clock.time()))
        await fake.wait_for_messages(2)
        late, fresh = texts(fake, CHAT_A)
        assert late.startswith("/restart was not run: it reached us 595 s after it was sent")
        assert fresh == "<pre>trader  pass</pre>"
        assert "Press the button" not in late


# -- reload ---------------------------------------------------------------------------------


async def test_changed_settings_rebuild_delivery_and_command_rights(fake: FakeBotApi) -> None:
    both = alerts_config(fake, [CHAT_A, CHAT_B], commands=True)
    async with serving(both) as rig:
        await fake.wait_for_request("getUpdates")
        rig.service.configure(alerts_config(fake, [CHAT_A, CHAT_B], commands=True))  # equal
        rig.service.publish([alert(rig.clock, "trader")])
        await fake.wait_for_messages(2)
        assert (len(fake.calls("getMe")), rig.service.starts) == (1, 1)  # left running
        fake.rate_limit_next(1, retry_after=3600, chat_id=CHAT_B)
        rig.service.publish([alert(rig.clock, "dashboard")])
        await until(lambda: "for chat 222" in rig.note(), 5, "chat B waiting")
        rig.service.configure(alerts_config(fake, [CHAT_A], commands=True))
        await fake.wait_for_request("getMe", 2)  # delivery and polling started again
        assert rig.service.outbox.chats() in ([], [CHAT_A])  # chat B's queue is gone
        now = int(rig.clock.time())
        fake.queue_message(CHAT_B, "/status", date=now)
        fake.queue_message(CHAT_A, "/status", date=now)
        rig.service.publish([alert(rig.clock, "monitor")])
        await until(lambda: len(texts(fake, CHAT_A)) == 4, 5, "chat A's alerts and reply")
        assert len(texts(fake, CHAT_B)) == 1  # only what came before the reload
        assert "<pre>trader  pass</pre>" in texts(fake, CHAT_A)


async def test_with_alerts_off_nothing_is_queued_that_nothing_would_send(
    fake: FakeBotApi,
) -> None:
    # Queued but never delivered, they looked like a delivery failure to Prometheus.
    config = dataclasses.replace(alerts_config(fake, [111]), enabled=False)
    async with serving(config) as rig:
        rig.service.publish([alert(rig.clock, "trader")])
        assert len(rig.service.outbox) == 0
