"""History end to end against the real sandbox: the timeline of a kill, across a restart of
the supervisor, and a full disk that must not stop supervision."""

from __future__ import annotations

import errno
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.sandbox import Sandbox
from supervisor.model import Status
from tests.integration.harness import Running, config, heartbeat_probe, passes, running, target_toml
from tests.polling import until, until_awaited

pytestmark = pytest.mark.sandbox
FAST = "backoff_s = [0, 0.5, 0.5]\nwindow_s = 120\nmax_attempts = 3\nretry_after_give_up_s = 3600"


def trader_toml(sandbox: Sandbox) -> str:
    body = "critical = true\n" + heartbeat_probe(sandbox, "trader")
    return target_toml("trader", "trader.service", body, recovery=FAST)


def kill_story(events: list[dict[str, Any]], old_pid: int) -> list[dict[str, Any]] | None:
    """The unit's failure, the restart and its result, oldest first; None until all are in."""
    story: list[dict[str, Any]] = []
    wanted: list[Callable[[dict[str, Any]], bool]] = [
        lambda e: (
            e["kind"] == "unit"
            and e["data"]["to"].startswith("failed")
            and e["data"]["mainPidBefore"] == old_pid
        ),
        lambda e: (
            e["kind"] == "recovery"
            and e["data"].get("action") == "restart"
            and "result" not in e["data"]
        ),
        lambda e: e["kind"] == "recovery" and e["data"].get("result") == "done",
    ]
    for event in events:
        if len(story) < len(wanted) and wanted[len(story)](event):
            story.append(event)
    return story if len(story) == len(wanted) else None


async def timeline(run: Running, query: str = "target=trader") -> list[dict[str, Any]]:
    code, page = await run.get(f"/events?{query}&limit=200")
    assert code == 200, page
    return list(reversed(page["events"]))  # oldest first


async def test_a_kill_is_in_the_timeline_in_order_and_survives_a_restart(
    sandbox: Sandbox,
) -> None:
    state = Path(tempfile.mkdtemp(prefix="sidecar-history-", dir=sandbox.root))
    cfg = config(sandbox, trader_toml(sandbox), state_dir=state)
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        pid = sandbox.main_pid("trader.service")
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        story: list[dict[str, Any]] | None = None
        deadline = killed + 10
        while story is None:
            seen = await timeline(run)
            assert time.monotonic() < deadline, f"the kill never showed in /events: {seen}"
            story = kill_story(seen, pid)
        took = time.monotonic() - killed
        print(f"\nkill -9 -> failure, restart and result in /events: {took:.3f} s")
        assert took < 1.0
        assert [e["id"] for e in story] == sorted(e["id"] for e in story)
        assert "signal=KILL" in story[0]["summary"]
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass again")
    async with running(sandbox, config(sandbox, trader_toml(sandbox), state_dir=state)) as again:
        # The writer thread opens the file just after start: poll for it, with a deadline.
        kept = await until_awaited(
            lambda: timeline(again), 5, "the kill's story", ok=lambda k: kill_story(k, pid)
        )
        assert kill_story(kept, pid) == story  # the same events, read back from the file
        # Written in batches off the loop: this start's own event reaches the file a moment
        # after the daemon answers.
        starts = await until_awaited(
            lambda: timeline(again, "kind=supervisor"), 5, "3 starts", ok=lambda s: len(s) >= 3
        )
        assert [e["summary"].split(" (")[-1] for e in starts[-3:]] == [
            "cleanly)",
            "exit 0)",
            "cleanly)",
        ]
        code, doc = await again.get("/history/trader")
        assert code == 200
        print(f"trader uptime over 24 h after a kill: {doc['uptime']['24h']:.4f} %")
        assert 0 < doc["uptime"]["24h"] < 100
        assert doc["incidents"] and doc["incidents"][-1]["durationS"] < 10


def fill(folder: Path) -> None:
    """Write a file until the filesystem has no byte left."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


async def test_a_full_disk_leaves_supervision_running(sandbox: Sandbox, small_tmpfs: Path) -> None:
    cfg = config(sandbox, trader_toml(sandbox), state_dir=small_tmpfs)
    async with running(sandbox, cfg) as run:
        await until(lambda: run.inside.history_open, 10, "the history open")
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        fill(small_tmpfs)  # the disk fills while the supervisor runs

        async def health() -> dict[str, Any]:
            _code, doc = await run.get("/health")
            return dict(doc)

        # Supervision goes on: a dead trader is still seen and restarted...
        pid = sandbox.main_pid("trader.service")
        os.kill(pid, signal.SIGKILL)
        await until(lambda: sandbox.main_pid("trader.service") not in (0, pid), 10, "a new trader")
        await passes(run, 2)
        # ...while /health says the history is unavailable, and why.
        doc = await until_awaited(
            health,
            10,
            "/health to say so",
            ok=lambda d: "history unavailable" in d.get("output", ""),
        )
        assert "disk full" in doc["output"]
        code, page = await run.get("/events?target=trader")
        assert code == 200 and page["source"] == "memory"  # what it could not store
        assert any(e["kind"] == "unit" for e in page["events"])
