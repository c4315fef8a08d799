"""A reload that changes [alerts]: the daemon in-process, the fake Bot API over real HTTP.

No systemd needed: the bus address points nowhere (the daemon keeps serving and reports its
targets unknown), and what is under test is the Telegram side of a SIGHUP reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from supervisor.app.daemon import Daemon
from supervisor.config import Config, load
from tests.polling import until

KEPT, REMOVED = 111, 222


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


def write(path: Path, fake: FakeBotApi, chats: list[int]) -> None:
    path.write_text(
        f'state_dir = "{path.parent / "state"}"\n'
        "[breaker]\nenabled = false\n[http]\nport = 0\n"
        f'[alerts.telegram]\ntoken = "{fake.token}"\nchat_ids = {chats}\n'
        f'api_url = "{fake.url}"\ntimeout_s = 3\n'
        '[[targets]]\nname = "trader"\nunit = "trader.service"\n'
    )


def replies(fake: FakeBotApi, chat_id: int) -> list[str]:
    return [str(m["text"]) for m in fake.sent if m["chat_id"] == chat_id]


async def test_a_chat_removed_on_reload_loses_its_command_rights(
    fake: FakeBotApi, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    write(path, fake, [KEPT, REMOVED])
    daemon = Daemon(
        load(path),
        env={"DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"},
        load_config=lambda: load(path),
    )
    stop, reload = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(daemon.run(stop, reload))
    try:
        await fake.wait_for_request("getUpdates")
        fake.queue_message(REMOVED, "/status")
        await fake.wait_for_messages(1, 10)
        assert "trader" in replies(fake, REMOVED)[0]  # allowed before the reload
        write(path, fake, [KEPT])
        reload.set()
        await fake.wait_for_request("getMe", 2, 10)  # delivery and polling rebuilt
        assert daemon.reloads == 1
        assert isinstance(daemon.config, Config) and daemon.config.alerts.telegram is not None
        assert daemon.config.alerts.telegram.chat_ids == [KEPT]
        fake.queue_message(REMOVED, "/status")
        fake.queue_message(KEPT, "/status")
        await until(lambda: replies(fake, KEPT), 10, "the kept chat answered")
        assert len(replies(fake, REMOVED)) == 1  # nothing new for the removed chat
        write(path, fake, [KEPT])  # unchanged [alerts]: delivery is left running
        reload.set()
        await until(lambda: daemon.reloads == 2, 10, "the second reload applied")
        fake.queue_message(KEPT, "/status")
        await until(lambda: len(replies(fake, KEPT)) == 2, 10, "the kept chat answered again")
        assert len(fake.calls("getMe")) == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
