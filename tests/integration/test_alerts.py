"""Alerts end to end: the real daemon, the real sandbox, a fake Bot API over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.net import free_port
from devtools.sandbox import Sandbox
from supervisor.model import Status
from tests.integration.bot import CHAT, STRANGER, alerts_toml, texts
from tests.integration.harness import (
    Running,
    config,
    get_json,
    get_text,
    heartbeat_probe,
    http_probe,
    passes,
    running,
    target_toml,
)
from tests.polling import until

pytestmark = pytest.mark.sandbox


def dashboard_failures(run: Running) -> int:
    return int(run.target("dashboard").probes[0].consecutive_failures)


async def test_one_alert_one_reminder_after_cooldown_one_resolved(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    body = http_probe(sandbox, period_s=0.2, timeout_s=0.2)
    cfg = config(
        sandbox,
        target_toml("dashboard", "dashboard.service", body),
        extra=alerts_toml(fake, cooldown_s=8),
    )
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        pid = sandbox.main_pid("dashboard.service")
        os.kill(pid, signal.SIGSTOP)
        try:
            await fake.wait_for_messages(1, 15)
            await until(lambda: dashboard_failures(run) >= 10, 15, "10 failed probe rounds")
            [first] = texts(fake)
            assert "WARNING</b> dashboard" in first
            assert "http: timeout after 0.2 s" in first
            await fake.wait_for_messages(2, 20)
            assert "still failing since" in texts(fake)[1]
        finally:
            os.kill(pid, signal.SIGCONT)
        await fake.wait_for_messages(3, 20)
        resolved = texts(fake)[2]
        assert "RESOLVED</b> dashboard" in resolved
        assert "resolved after " in resolved
        await passes(run, 3)
        assert len(texts(fake)) == 3


async def test_429_retry_after_is_honoured(sandbox: Sandbox, fake: FakeBotApi) -> None:
    fake.rate_limit_next(1, retry_after=2)
    cfg = config(
        sandbox,
        target_toml("trader", "trader.service"),
        extra=alerts_toml(fake, failure_threshold=1),
    )
    async with running(sandbox, cfg):
        os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
        await fake.wait_for_messages(1, 20)
    first, second = fake.calls("sendMessage")[:2]
    gap = second.at - first.at
    print(f"\n429 retry_after=2 -> next attempt after {gap:.2f} s")
    assert gap >= 1.95


class Proc:
    """`supervisor run` as a real process (so it can be SIGKILLed), sharing a state dir."""

    def __init__(self, sandbox: Sandbox, cfg: Path, log: Path, token: str) -> None:
        env = {**os.environ, **sandbox.env(), "SUPERVISOR_ALERTS__TELEGRAM__TOKEN": token}
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supervisor",
                "run",
                "--config",
                str(cfg),
                "--log-level",
                "DEBUG",
            ],
            env=env,
            stderr=self.log,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=15)
        self.log.close()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop(signal.SIGKILL)


def write_config(tmp: Path, fake: FakeBotApi, port: int, targets: str) -> Path:
    text = (
        f'state_dir = "{tmp / "state"}"\n[breaker]\nenabled = false\n'
        f"[http]\nport = {port}\n"
        + alerts_toml(fake, failure_threshold=1).replace(
            f'token = "{fake.token}"\n', ""
        )  # the token comes from the environment
        + targets
    )
    path = tmp / "config.toml"
    path.write_text(text)
    return path


def saved(tmp: Path) -> dict[str, Any]:
    try:
        state = json.loads((tmp / "state" / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def outbox_len(tmp: Path) -> int:
    return len(saved(tmp).get("outbox", {}).get("messages", []))


def attempts_saved(tmp: Path) -> list[Any]:
    return list(saved(tmp).get("recovery", {}).get("trader", {}).get("attempts", []))


# Recovery on: one attempt at once, then a long backoff, so the test sees one attempt made and
# saved, and the next life must not make it again as if it were the first.
SLOW_RETRY = "backoff_s = [0, 120, 120]\nwindow_s = 900\nmax_attempts = 3"


async def test_outage_and_a_killed_supervisor_lose_nothing_and_duplicate_nothing(
    sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path, procs: list[Proc]
) -> None:
    await fake.down()
    port = free_port()
    trader = target_toml("trader", "trader.service", recovery=SLOW_RETRY)
    cfg = write_config(tmp_path, fake, port, trader)
    log = tmp_path / "supervisor.log"
    procs.append(Proc(sandbox, cfg, log, fake.token))
    await until(lambda: _answers(port), 15, "the first supervisor serving")
    sandbox.fault("trader", "crash-on-start")  # its restart fails: the incident stays open
    os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
    await until(lambda: len(attempts_saved(tmp_path)) == 1, 20, "the attempt in the state file")
    await until(lambda: outbox_len(tmp_path) == 1, 20, "the alert saved in the outbox")
    attempts = attempts_saved(tmp_path)
    procs[0].stop(signal.SIGKILL)  # no clean stop: nothing flushed at exit
    procs.append(Proc(sandbox, cfg, log, fake.token))
    await until(lambda: outbox_len(tmp_path) == 2, 20, "the restart notice queued behind it")
    # The attempt survived: the new life waits out the backoff instead of starting again.
    await until(lambda: _recovery(port).startswith("waiting"), 20, "the backoff carried over")
    assert attempts_saved(tmp_path) == attempts
    sandbox.fault("trader", "no-crash-on-start")
    sandbox.systemctl("start", "trader.service")
    await until(lambda: outbox_len(tmp_path) == 3, 20, "the resolved notice queued")
    await fake.up()
    await fake.wait_for_messages(3, 40)
    got = texts(fake)
    assert len(got) == 3
    assert "trader" in got[0] and "failing" in got[0]
    assert "supervisor restarted" in got[1]
    assert "RESOLVED</b> trader" in got[2]
    await until(lambda: outbox_len(tmp_path) == 0, 10, "the outbox emptied and saved")
    procs[1].stop()
    assert len(texts(fake)) == 3  # each once
    logs = log.read_text()
    assert fake.token not in logs
    assert logs.count("restart trader (attempt 1/3)") == 1  # one attempt, never repeated


def _recovery(port: int) -> str:
    """The trader's recovery words in /health ("idle" until systemd was first read)."""
    _code, doc = get_json(f"http://127.0.0.1:{port}/health/trader", timeout=2)
    return str(doc["checks"]["trader"][0]["recovery"])


def _answers(port: int) -> bool:
    try:
        get_json(f"http://127.0.0.1:{port}/health", timeout=1)
    except OSError:
        return False
    return True


async def test_commands_only_from_allowed_chats_and_only_for_targets(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    body = f"ports = [{sandbox.dashboard_port}]\n"
    cfg = config(
        sandbox,
        target_toml("dashboard", "dashboard.service", body),
        extra=alerts_toml(fake, commands=True),
    )
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 10, "dashboard pass")
        pid = sandbox.main_pid("dashboard.service")
        await fake.wait_for_request("getUpdates")
        fake.queue_message(STRANGER, "/restart dashboard")
        fake.queue_message(CHAT, "/restart sshd")
        await fake.wait_for_messages(1, 10)
        assert "'sshd' is not a configured target" in texts(fake)[0]
        assert texts(fake, STRANGER) == []
        fake.queue_message(CHAT, "/restart dashboard")
        await fake.wait_for_messages(2, 10)
        confirm = fake.sent[1]
        assert "Press the button" in str(confirm["text"])
        assert sandbox.main_pid("dashboard.service") == pid  # nothing yet: not confirmed
        fake.queue_callback(STRANGER, "restart:dashboard", int(confirm["message_id"]))
        fake.queue_callback(CHAT, "restart:dashboard", int(confirm["message_id"]))
        await until(
            lambda: sandbox.main_pid("dashboard.service") not in (0, pid),
            15,
            "the dashboard restarted on request",
        )
        await fake.wait_for_messages(3, 10)
        assert texts(fake)[2] == "restart dashboard: done"
        assert texts(fake, STRANGER) == []
        fake.queue_message(CHAT, "/status")
        await fake.wait_for_messages(4, 10)
        assert "dashboard" in texts(fake)[3] and "<pre>" in texts(fake)[3]


async def test_a_silenced_target_sends_nothing_until_the_silence_ends(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    body = heartbeat_probe(sandbox, "trader")
    cfg = config(
        sandbox,
        target_toml("trader", "trader.service", body),
        extra=alerts_toml(fake, commands=True, failure_threshold=1),
    )
    async with running(sandbox, cfg) as run:
        await fake.wait_for_request("getUpdates")
        fake.queue_message(CHAT, "/silence trader 0.1")  # six seconds
        await fake.wait_for_messages(1, 10)
        assert texts(fake) == ["trader: silenced for 0.1 min"]
        os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
        await until(lambda: "trader:health" in run.inside.incidents, 10, "an incident")
        await passes(run, 3)
        assert len(fake.sent) == 1  # silenced: the incident is open, nothing was sent
        await fake.wait_for_messages(2, 20)
        assert "trader" in texts(fake)[1] and "failing" in texts(fake)[1]


async def test_the_token_never_leaks(
    sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path, procs: list[Proc]
) -> None:
    port = free_port()
    cfg = write_config(
        tmp_path,
        fake,
        port,
        target_toml("trader", "trader.service", heartbeat_probe(sandbox, "trader")),
    )
    log = tmp_path / "supervisor.log"
    fake.fail_next(2, status=502)
    procs.append(Proc(sandbox, cfg, log, fake.token))
    await until(lambda: _answers(port), 15, "serving")
    os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
    await fake.wait_for_messages(1, 30)
    _, health = get_json(f"http://127.0.0.1:{port}/health")
    _, metrics = get_text(f"http://127.0.0.1:{port}/metrics")
    procs[0].stop()
    wrong = Proc(sandbox, cfg, tmp_path / "wrong.log", "999:wrong-token-value")
    procs.append(wrong)
    await until(
        lambda: "alerts disabled" in (tmp_path / "wrong.log").read_text(),
        15,
        "the bad token reported",
    )
    _, wrong_health = get_json(f"http://127.0.0.1:{port}/health")
    assert "alerts disabled: Telegram rejected the bot token" in wrong_health["output"]
    wrong.stop()
    # In a thread: the fake Bot API answers from this test's event loop.
    test = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "supervisor", "alert-test", "--config", str(cfg)],
        env={**os.environ, "SUPERVISOR_ALERTS__TELEGRAM__TOKEN": fake.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert test.returncode == 0, test.stderr
    assert f"test message delivered to chat {CHAT}" in test.stdout
    for text in (
        log.read_text(),
        json.dumps(health),
        metrics,
        (tmp_path / "wrong.log").read_text(),
        wrong_health["output"],
        test.stdout + test.stderr,
    ):
        assert fake.token not in text
        assert "999:wrong-token-value" not in text
    assert "502" in log.read_text() or "Bad Gateway" in log.read_text()
