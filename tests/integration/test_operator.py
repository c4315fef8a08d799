"""Working with the people who run the box, on the real sandbox: deliberate stops, restarts and
deploys, holds, start-up grace, and "resolved" only once a target passes. Telegram is the
fake Bot API over real HTTP: every message counted."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.sandbox import Sandbox
from supervisor.config import Config, Secret
from supervisor.history.events import Event, Kind
from supervisor.model import Status
from tests.integration.bot import alerts_toml
from tests.integration.harness import (
    Running,
    config,
    heartbeat_probe,
    http_probe,
    passes,
    running,
    target_toml,
)
from tests.integration.test_recovery import actions
from tests.polling import until

pytestmark = pytest.mark.sandbox
CHAT = 111
ALICE = 7
KEY = "a-long-enough-test-key"
RECOVER = "backoff_s = [0, 1, 1]\nwindow_s = 120\nmax_attempts = 3"
STOPPED_WATCH_S = 20


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


async def stays(pred: Callable[[], object], seconds: float, what: str) -> None:
    """Poll `pred` for `seconds`; fail the moment it stops holding (a deadline, not a sleep)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert pred(), f"{what} stopped holding"
        await asyncio.sleep(0.05)


def trader(sandbox: Sandbox, fake: FakeBotApi) -> Config:
    body = "critical = true\n" + heartbeat_probe(sandbox, "trader")
    return config(
        sandbox,
        target_toml("trader", "trader.service", body, recovery=RECOVER),
        extra=alerts_toml(fake, failure_threshold=1),
    )


def install_variant(sandbox: Sandbox, program: str, edit: Callable[[str], str]) -> None:
    """Run `program` from an edited unit file (the autouse fixture puts the standard one back)."""
    sandbox.install_unit(f"{program}.service", edit(sandbox.unit_text(program)))
    sandbox.systemctl("restart", f"{program}.service")
    sandbox.wait_ready(program, 30)


def exec_start(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("ExecStart="))


def after_sleep(seconds: int) -> Callable[[str], str]:
    """The program opens its port (writes its heartbeat) `seconds` after its process starts."""

    def edit(text: str) -> str:
        line = exec_start(text)
        command = line.removeprefix("ExecStart=")
        return text.replace(line, f'ExecStart=/bin/sh -c "sleep {seconds}; exec {command}"')

    return edit


def new_pid(sandbox: Sandbox, unit: str, old: int) -> Callable[[], bool]:
    return lambda: sandbox.main_pid(unit) not in (0, old)


# -- deliberate stops, restarts, deploys -----------------------------------------------------


async def test_a_stop_on_request_is_left_alone_until_started_and_a_kill_still_restarts(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    async with running(sandbox, trader(sandbox, fake)) as run:
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass")
        sandbox.systemctl("stop", "trader.service")
        await until(lambda: "stopped on request at" in run.target("trader").output, 5, "stopped")
        # A stopped unit is not probed (inactive is known bad): what could start it again is
        # a pass of the loop (one at least every 5 s) deciding it failed. Four passes and more.
        before = run.inside.passes
        await stays(
            lambda: sandbox.main_pid("trader.service") == 0,
            STOPPED_WATCH_S,
            f"trader staying stopped {STOPPED_WATCH_S} s",
        )
        assert run.inside.passes - before >= 4
        code, doc = await run.get("/health")
        entry = doc["checks"]["trader"][0]
        assert (code, doc["status"], entry["status"]) == (200, "warn", "warn")
        assert entry["output"].startswith("stopped on request at ")
        assert "stoppedOnRequest" in entry
        assert actions(run, "trader", "restart") == 0
        assert fake.sent == []
        sandbox.systemctl("start", "trader.service")
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass after start")
        assert run.target("trader").stopped_at is None
        pid = sandbox.main_pid("trader.service")
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await until(new_pid(sandbox, "trader.service", pid), 5, "trader restarted", step=0.005)
        print(f"\nkill -9 after a stop and start -> new MainPID: {time.monotonic() - killed:.3f} s")
        await until(lambda: actions(run, "trader", "restart", "done") == 1, 10, "the job done")
        assert actions(run, "trader", "restart") == 1


async def test_an_operators_restart_is_no_failure_and_no_message(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    body = http_probe(sandbox, period_s=0.5, timeout_s=0.5)
    cfg = config(
        sandbox,
        target_toml("dashboard", "dashboard.service", body, recovery=RECOVER),
        extra=alerts_toml(fake, failure_threshold=1),
    )
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        seen: set[Status] = set()
        pid = sandbox.main_pid("dashboard.service")
        watch = asyncio.create_task(_statuses(run, "dashboard", seen))
        try:
            sandbox.systemctl("restart", "dashboard.service")
            await until(new_pid(sandbox, "dashboard.service", pid), 10, "a new dashboard")
            await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        finally:
            watch.cancel()
        await passes(run, 3)
        assert Status.FAIL not in seen
        assert actions(run, "dashboard", "restart") == 0
        assert fake.sent == []


async def _statuses(run: Running, name: str, seen: set[Status]) -> None:
    while True:
        seen.add(run.status(name))
        await asyncio.sleep(0.001)


async def test_a_scripted_deploy_needs_no_hold(sandbox: Sandbox, fake: FakeBotApi) -> None:
    async with running(sandbox, trader(sandbox, fake)) as run:
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass")
        # The deploy: stop, replace what the unit runs (while it is down), reload, start.
        sandbox.systemctl("stop", "trader.service")
        await stays(lambda: sandbox.main_pid("trader.service") == 0, 3, "down while copying")
        text = sandbox.unit_text("trader").replace(
            "PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=1 DEPLOYED=v2"
        )
        sandbox.install_unit("trader.service", text)  # daemon-reload
        sandbox.systemctl("start", "trader.service")
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass on v2")
        environ = await asyncio.to_thread(_environ, sandbox.main_pid("trader.service"))
        assert b"DEPLOYED=v2" in environ.split(b"\0")
        await passes(run, 3)
        assert actions(run, "trader", "restart") == 0
        assert fake.sent == []


def _environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


# -- start-up grace and "resolved" only when passing -----------------------------------------


async def test_a_slow_starter_is_restarted_once_and_passes_within_25_s(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    install_variant(sandbox, "dashboard", after_sleep(12))
    body = f"ports = [{sandbox.dashboard_port}]\n" + http_probe(sandbox)
    cfg = config(
        sandbox,
        target_toml("dashboard", "dashboard.service", body, recovery="enabled = true"),
        extra=alerts_toml(fake),
    )
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        pid = sandbox.main_pid("dashboard.service")
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await until(new_pid(sandbox, "dashboard.service", pid), 5, "restarted at once")
        await until(lambda: run.target("dashboard").output.startswith("starting ("), 5, "starting")
        _code, doc = await run.get("/health/dashboard")
        words = doc["checks"]["dashboard"][0]["output"]
        assert words.startswith("starting (") and "s of 60 s grace)" in words
        await until(lambda: run.status("dashboard") is Status.PASS, 25, "dashboard pass")
        took = time.monotonic() - killed
        print(f"\nslow starter (12 s): kill -9 -> pass in {took:.1f} s")
        assert took < 25
        assert actions(run, "dashboard", "restart") == 1


async def test_a_starter_that_never_passes_is_restarted_when_its_grace_ends_then_given_up(
    sandbox: Sandbox,
) -> None:
    body = http_probe(sandbox, period_s=0.5, timeout_s=0.5, startup_grace_s=4)
    cfg = config(sandbox, target_toml("dashboard", "dashboard.service", body, recovery=RECOVER))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        # When each restart was issued, as the daemon recorded it (an event without a result;
        # the one with its result comes when the job is done, a variable time later).
        issued: list[float] = []

        def heard(event: Event) -> None:
            data = event.data
            restart = event.kind is Kind.RECOVERY and "restart" in str(data.get("action"))
            if restart and event.target == "dashboard" and "result" not in data:
                issued.append(event.time)

        unsubscribe = run.inside.listen(heard)
        install_variant_no_wait(sandbox, after_sleep(3600))  # its port never opens
        await until(
            lambda: run.daemon.fleet.repairer.gave_up("dashboard"), 60, "recovery to give up"
        )
        unsubscribe()
        gaps = [b - a for a, b in itertools.pairwise(issued)]
        print(f"\nnever passing, grace 4 s: restarts {len(issued)}, gaps {gaps}")
        assert len(issued) == 3
        # Each waited out its 4 s grace: the grace starts when the daemon sees the new
        # process, which is after the restart that made it was issued.
        assert all(gap >= 4.0 for gap in gaps)


def install_variant_no_wait(sandbox: Sandbox, edit: Callable[[str], str]) -> None:
    sandbox.install_unit("dashboard.service", edit(sandbox.unit_text("dashboard")))
    sandbox.systemctl("restart", "dashboard.service")


async def test_a_slow_start_gives_one_alert_and_one_resolved_once_it_passes(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    def pre(text: str) -> str:
        line = exec_start(text)
        return text.replace(line, f"ExecStartPre=/bin/sleep 8\n{line}")

    install_variant(sandbox, "trader", pre)
    async with running(sandbox, trader(sandbox, fake)) as run:
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass")
        os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
        [alert] = await fake.wait_for_messages(1, 10)
        assert "WARNING</b> trader" in str(alert["text"])
        await until(
            lambda: sandbox.show("trader", "SubState")["SubState"] == "start-pre", 5, "start-pre"
        )
        await stays(
            lambda: sandbox.show("trader", "ActiveState")["ActiveState"] != "active",
            5,
            "trader activating",
        )
        assert len(fake.sent) == 1  # activating is not back
        await until(lambda: run.status("trader") is Status.PASS, 20, "trader pass")
        [_alert, resolved] = await fake.wait_for_messages(2, 10)
        assert "RESOLVED</b> trader" in str(resolved["text"])
        await passes(run, 3)
        assert len(fake.sent) == 2
        seconds = int(str(resolved["text"]).split("resolved after ")[1].split("s")[0])
        assert seconds >= 8


# -- holds ---------------------------------------------------------------------------------


def cli(cfg_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "supervisor", *args, "--config", str(cfg_file)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)


def config_file(cfg: Config, where: Path) -> Path:
    """The least a CLI needs to find the same daemon: the same state_dir."""
    path = where / "config.toml"
    path.write_text(f'state_dir = "{cfg.state_dir}"\n' + target_toml("trader", "trader.service"))
    return path


async def test_a_hold_from_the_cli_stops_recovery_and_alerts_until_it_expires(
    sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path
) -> None:
    cfg = trader(sandbox, fake)
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass")
        cfg_file = config_file(cfg, tmp_path)
        done = await asyncio.to_thread(
            cli, cfg_file, "hold", "trader", "--for", "8s", "--reason", "deploy"
        )
        assert done.returncode == 0, done.stderr
        assert "trader: held until" in done.stdout
        listed = await asyncio.to_thread(cli, cfg_file, "holds")
        assert "trader" in listed.stdout and "deploy" in listed.stdout
        _code, doc = await run.get("/health/trader")
        hold = doc["checks"]["trader"][0]["hold"]
        assert hold["reason"] == "deploy" and hold["by"].startswith("cli:")
        pid = sandbox.main_pid("trader.service")
        os.kill(pid, signal.SIGKILL)
        held_until = run.target("trader").hold.until
        await stays(
            lambda: sandbox.main_pid("trader.service") == 0,
            max(0.0, held_until - time.time() - 0.5),
            "trader left down while held",
        )
        assert fake.sent == []
        assert actions(run, "trader", "restart") == 0
        await until(
            new_pid(sandbox, "trader.service", pid), held_until - time.time() + 5, "restart"
        )
        restarted_after = time.time() - held_until
        print(f"\nhold expired -> restarted {restarted_after:.2f} s later")
        assert run.target("trader").hold is None
        _code, events = await run.get("/events?kind=hold&target=trader")
        said = [e["summary"] for e in events["events"]]
        assert any("held until" in s for s in said) and any("expired" in s for s in said)


async def test_holds_from_http_and_chat_and_across_a_restart(
    sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path
) -> None:
    cfg = config(
        sandbox,
        target_toml("trader", "trader.service", recovery=RECOVER),
        extra=f"{alerts_toml(fake, commands=True)}\n",
    )
    cfg = dataclasses.replace(cfg, http=dataclasses.replace(cfg.http, api_key=Secret(KEY)))
    async with running(sandbox, cfg) as run:
        url = f"{run.url}/targets/trader/hold"
        code, answer = await asyncio.to_thread(_send, url, "POST", {"for": "20m", "reason": "http"})
        assert code == 200 and answer["hold"]["reason"] == "http"
        assert run.target("trader").hold.by.startswith("http:")
        code, _answer = await asyncio.to_thread(_send, url, "POST", {"for": "3d"})
        assert code == 400
        code, answer = await asyncio.to_thread(_send, url, "DELETE", None)
        assert (code, answer["released"]) == (200, True)
        assert run.target("trader").hold is None
        code, _answer = await asyncio.to_thread(_send, url, "POST", {}, key="wrong-key-xxxxxxxx")
        assert code == 401
        assert run.target("trader").hold is None
        await fake.wait_for_request("getUpdates")
        fake.queue_message(
            CHAT, "/hold trader 20m deploy v2", from_user_id=ALICE, date=int(time.time())
        )
        await until(lambda: run.target("trader").hold is not None, 10, "the chat's hold")
        assert run.target("trader").hold.reason == "deploy v2"
        await until(
            lambda: run.inside.saved().get("targets", {}).get("holds"),
            10,
            "saved",
        )
    async with running(sandbox, cfg) as again:
        hold = again.target("trader").hold
        assert hold is not None and hold.reason == "deploy v2"
        assert hold.by == f"chat:{ALICE}"


def _send(url: str, method: str, body: object, key: str = KEY) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"X-API-Key": key})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
