"""An upgrade in place keeps what 0.1.0 knew: its state file and history database (written by
0.1.0's own code, see tests/upgrade/make_0_1_0.py) are read by this version, nothing is moved
aside, and what they held is in force: the undelivered alert is delivered, the incident,
silence and Telegram offset resume, and the old events and incidents are in the history."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.sandbox import Sandbox
from supervisor import __version__
from tests.integration.harness import config, heartbeat_probe, http_probe, running, target_toml

pytestmark = pytest.mark.sandbox
FIXTURES = Path(__file__).resolve().parents[1] / "upgrade" / "0.1.0"
CHAT = 4242  # the chat of the alert 0.1.0 left in its outbox


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


def old_state_dir(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    for name in ("state.json", "history.sqlite3"):
        shutil.copy(FIXTURES / name, state / name)
    return state


async def test_a_0_1_0_state_file_and_history_are_read_by_this_version(
    sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path
) -> None:
    assert __version__ != "0.1.0"
    state = old_state_dir(tmp_path)
    saved = json.loads((state / "state.json").read_text())
    assert saved["version"] == 1  # what 0.1.0 wrote
    targets = target_toml(
        "trader", "trader.service", "critical = true\n" + heartbeat_probe(sandbox, "trader")
    ) + target_toml("dashboard", "dashboard.service", http_probe(sandbox))
    extra = (
        "[history]\nretention_days = 3650\n"  # the 0.1.0 events are from May 2026: keep them
        f'[alerts.telegram]\ntoken = "{fake.token}"\nchat_ids = [{CHAT}]\n'
        f'api_url = "{fake.url}"\ncommands = false\ntimeout_s = 3\n'
    )
    cfg = config(sandbox, targets, extra, state_dir=state)
    async with running(sandbox, cfg) as run:
        # Restored as they were saved (the incident may resolve soon: the trader passes).
        assert run.inside.silences["dashboard"] == saved["alerts"]["silences"]["dashboard"]
        offset = run.inside.chat_offset
        assert offset is not None and offset >= 77
        sent = await fake.wait_for_messages(1, 20)
        assert "0.1.0 left this alert undelivered" in [m["text"] for m in sent]
        _, page = await run.get("/events?target=trader&limit=100")
        assert page["source"] == "store"
        summaries = [e["summary"] for e in page["events"]]
        assert "restart trader (attempt 1/3): done" in summaries
        assert "trader pass -> fail: failed (failed)" in summaries
        # The open incident from 0.1.0 resumes: the trader passes, so it is resolved, once
        # (after about half a year: it opened at BASE + 600).
        await fake.wait_for_messages(2, 30)
        resolved = [m["text"] for m in fake.sent if "resolved after" in m["text"]]
        assert len(resolved) == 1, [m["text"] for m in fake.sent]
        assert "trader" in resolved[0]
    assert not list(state.glob("*.corrupt-*")), "0.2.0 moved a 0.1.0 file aside"
    assert json.loads((state / "state.json").read_text())["version"] == 1
