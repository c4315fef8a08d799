"""The whole daemon on a fake systemd: an alert leaves only after the state that decided it is
on disk, so a supervisor killed at the moment Telegram has the message decides nothing again.

The fake Bot API reads the state file as each message arrives, before it answers: that file
is what a supervisor killed with SIGKILL at that moment would start from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devtools.fakes.telegram_api import FakeBotApi
from devtools.fakes.telegram_wire import ApiCall
from tests.bus.test_daemon import NO_RECOVERY, alerts_toml, config, running, target, texts
from tests.fakes.dbus_daemon import BusDaemon
from tests.fakes.systemd_bus import FakeSystemd
from tests.polling import until


def _on_disk(state_dir: Path, seen: list[tuple[int, str, dict[str, Any]]]) -> Any:
    def read(call: ApiCall) -> None:
        if call.method == "sendMessage":
            state = json.loads(state_dir.joinpath("state.json").read_text())
            seen.append((int(call.params["chat_id"]), str(call.params["text"]), state))

    return read


async def _fail_then_recover(systemd: FakeSystemd, fake: FakeBotApi, *, chats: int) -> None:
    """The trader dies, its alert reaches every chat; it runs again, its resolved too."""
    systemd.set_unit(
        "trader.service", ActiveState="failed", SubState="failed", Result="signal", MainPID=0
    )
    await fake.wait_for_messages(chats, timeout=10)
    systemd.set_unit("trader.service", ActiveState="active", SubState="running", MainPID=4242)
    await fake.wait_for_messages(2 * chats, timeout=15)


def _open(state: dict[str, Any], name: str) -> bool:
    return any(i["target"] == name for i in state["alerts"]["incidents"])


def _queued(state: dict[str, Any], text: str) -> bool:
    return any(m["text"] == text for m in state["outbox"]["messages"])


async def test_the_failing_and_resolved_alerts_leave_after_the_state_that_decided_them(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    seen: list[tuple[int, str, dict[str, Any]]] = []
    async with FakeBotApi() as fake:
        cfg = config(
            tmp_path,
            target("trader", NO_RECOVERY),
            "[alerts]\nfailure_threshold = 1\n" + alerts_toml(fake),
        )
        fake.on_request = _on_disk(tmp_path, seen)
        async with running(bus, cfg):
            await _fail_then_recover(systemd, fake, chats=1)
    (_, failing, at_failing), (_, resolved, at_resolved) = seen[:2]
    assert "failing" in failing and "resolved" in resolved, (failing, resolved)
    # Killed as the failing alert reached Telegram: the next life holds the incident and the
    # message, and sends it again at worst; it does not open a second incident.
    assert _open(at_failing, "trader") and _queued(at_failing, failing)
    # Killed as the resolved alert reached Telegram: no incident is left open to resolve again.
    assert not _open(at_resolved, "trader") and _queued(at_resolved, resolved)


CHATS = (111, 222)


def _two_chats(fake: FakeBotApi) -> str:
    return (
        "[alerts]\nfailure_threshold = 1\n"
        f'[alerts.telegram]\ntoken = "{fake.token}"\nchat_ids = {list(CHATS)}\n'
        f'api_url = "{fake.url}"\ntimeout_s = 3\n'
    )


async def test_killed_as_the_first_chat_has_the_resolved_the_next_life_sends_that_one(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    seen: list[tuple[int, str, dict[str, Any]]] = []
    async with FakeBotApi() as fake:
        fake.on_request = _on_disk(first, seen)
        async with running(bus, config(first, target("trader", NO_RECOVERY), _two_chats(fake))):
            await _fail_then_recover(systemd, fake, chats=2)
    # SIGKILL as the first chat had the resolved: the next life starts from that file.
    at = next(i for i, (_chat, text, _state) in enumerate(seen) if "RESOLVED" in text)
    chat, resolved, state = seen[at]
    (other,) = set(CHATS) - {chat}
    second.mkdir()
    second.joinpath("state.json").write_text(json.dumps(state))
    async with FakeBotApi() as fake:
        cfg = config(second, target("trader", NO_RECOVERY), _two_chats(fake))
        async with running(bus, cfg) as run:
            assert not run.inside.incidents  # none left open to be resolved again
            await until(lambda: resolved in texts(fake, other), 10, "the resolved to the other")
            waiting = "supervisor_alert_outbox_messages"
            await until(lambda: run.inside.sample(waiting) == 0, 10, "the outbox empty")
            sent = {c: [t for t in texts(fake, c) if "RESOLVED" in t] for c in CHATS}
    # The other chat has it once, the message the first life queued; the first chat at worst
    # once more (killed before the write that says it went out).
    assert sent[other] == [resolved]
    assert sent[chat] in ([], [resolved])
