"""Why a unit died, end to end: the real sandbox, the real daemon, a fake Bot API over real HTTP.

Each test installs a small unit that writes its output to a file (`StandardOutput=append:`),
waits until the daemon has seen it running, makes it die (exit 3, kill -9, SIGSEGV with
core dumps allowed, a watchdog that is never fed), and reads what a person would see: the
Telegram alert, `/events`, `/history/{target}` and `supervisor why`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.sandbox import Sandbox
from devtools.sandbox.journal import Journald, JournalUnavailableError
from supervisor.model import ActiveState
from tests.integration.harness import (
    Running,
    config,
    get_json,
    http_probe,
    running,
    target_toml,
)
from tests.polling import until

pytestmark = pytest.mark.sandbox
CHAT = 111
UNIT = "crasher.service"
TOKEN = "987654321:AAFakeTokenThatMustNeverLeaveTheBox0"
KEY = "sk-live-never-show-me"


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real systemd-journald while this module's journal tests run (this host has none)."""
    try:
        with Journald(tmp_path_factory.mktemp("journald") / "journald.log"):
            yield
    except JournalUnavailableError as exc:
        pytest.fail(f"no journal for the journal tests: {exc}")


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


def crasher(sandbox: Sandbox, tmp: Path, script: str, extra: str = "", *, to: str = "") -> Path:
    """A unit running `script` under sh, its output appended to a file (or `to`: journal)."""
    out = tmp / "crasher.log"
    sandbox.install_unit(
        UNIT,
        f"[Service]\nExecStart=/bin/sh -c '{script}'\nStandardOutput={to or f'append:{out}'}\n"
        f"StandardError=inherit\nWorkingDirectory={tmp}\n{extra}",
    )
    return out


def settings(sandbox: Sandbox, fake: FakeBotApi, targets: str = "") -> Any:
    alerts = (
        "[alerts]\nfailure_threshold = 1\n[alerts.telegram]\n"
        f'token = "{fake.token}"\nchat_ids = [{CHAT}]\napi_url = "{fake.url}"\n'
        "commands = false\ntimeout_s = 3\n"
    )
    return config(sandbox, targets or target_toml("crasher", UNIT), extra=alerts)


@contextlib.asynccontextmanager
async def watched(sandbox: Sandbox, fake: FakeBotApi) -> AsyncIterator[Running]:
    """The unit started first (an inactive unit would fail, and alert, at once), then watched."""
    sandbox.systemctl("reset-failed", UNIT, check=False)
    sandbox.systemctl("start", UNIT)
    try:
        async with running(sandbox, settings(sandbox, fake)) as run:
            yield run
    finally:
        sandbox.systemctl("stop", UNIT, check=False)
        sandbox.systemctl("reset-failed", UNIT, check=False)


async def seen_running(sandbox: Sandbox, run: Running) -> int:
    """Wait until the daemon saw the unit running; its main PID."""

    def seen() -> bool:
        state = run.target("crasher").unit_state
        return state is not None and state.active_state is ActiveState.ACTIVE

    await until(seen, 10, "the daemon to see the unit running")
    pid = sandbox.main_pid(UNIT)
    # Never 0 (or below): os.kill(0, ...) would signal this test run's own process group.
    assert pid > 1, f"{UNIT} has no main process: {sandbox.show(UNIT, 'ActiveState', 'Result')}"
    return pid


async def the_alert(fake: FakeBotApi) -> str:
    sent = await fake.wait_for_messages(1, timeout=15)
    return str(sent[0]["text"])


async def death_event(run: Running, target: str = "crasher", kind: str = "unit") -> dict[str, Any]:
    """The target's failure event that carries a cause (a death's `unit`, a hang's `status`)."""

    def find() -> dict[str, Any] | None:
        _code, page = get_json(f"{run.url}/events?target={target}&kind={kind}")
        return next((e for e in page["events"] if "cause" in e["data"]), None)

    found = await until(find, 10, f"{target}'s failure with a cause in /events", in_thread=True)
    assert found is not None
    return found


def fatal_script(fifo: Path) -> str:
    """Prints two secrets, waits for a line on `fifo`, then a FATAL line and exit 3."""
    os.mkfifo(fifo)
    return (
        f'echo "starting with api_key={KEY}"; echo "bot token {TOKEN}"; read x < {fifo}; '
        'echo "FATAL lost connection to exchange"; exit 3'
    )


async def test_exit_status_3_after_a_fatal_line_in_the_journal(
    journal: None, sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path
) -> None:
    fifo = tmp_path / "go"
    crasher(sandbox, tmp_path, fatal_script(fifo), to="journal")
    async with watched(sandbox, fake) as run:
        await seen_running(sandbox, run)
        await asyncio.to_thread(fifo.write_text, "go\n")
        text = await the_alert(fake)
        assert "exited with status 3 after" in text.split("\n")[0]
        assert "FATAL lost connection to exchange</pre>" in text, await _journal_fields()
        event = await death_event(run)
        assert event["data"]["log"]["source"] == "journal"
        assert event["data"]["log"]["lines"][-1] == "FATAL lost connection to exchange"
        assert event["data"]["invocation"]
        _code, events = await run.get_text("/events?target=crasher")
        for secret in (KEY, TOKEN, TOKEN.split(":")[1]):
            assert secret not in text and secret not in events
        assert "api_key=<secret>" in events


async def test_exit_status_3_after_a_fatal_line_in_a_file(
    sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path
) -> None:
    fifo = tmp_path / "go"
    crasher(sandbox, tmp_path, fatal_script(fifo))
    async with watched(sandbox, fake) as run:
        await seen_running(sandbox, run)
        await asyncio.to_thread(fifo.write_text, "go\n")
        text = await the_alert(fake)
        first = text.split("\n")[0]
        assert "crasher" in first and "exited with status 3 after" in first
        assert "<pre>" in text and "FATAL lost connection to exchange" in text
        event = await death_event(run)
        assert event["data"]["cause"]["kind"] == "exited"
        assert event["data"]["log"]["lines"][-1] == "FATAL lost connection to exchange"
        assert event["data"]["log"]["source"].startswith("file ")
        _code, history = await run.get("/history/crasher")
        incident = history["incidents"][0]
        assert incident["cause"].startswith("exited with status 3")
        assert incident["log"][-1] == "FATAL lost connection to exchange"
        why = await asyncio.to_thread(_why, run.url, "crasher")
        assert "exited with status 3" in why and "FATAL lost connection to exchange" in why
        _code, events = await run.get_text("/events?target=crasher")
        _code, summary = await run.get_text("/history")
        for secret in (KEY, TOKEN, TOKEN.split(":")[1]):
            for seen in (text, events, summary, why):
                assert secret not in seen


async def test_kill_9_says_sigkill(sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path) -> None:
    crasher(sandbox, tmp_path, "echo up; exec sleep 600")
    async with watched(sandbox, fake) as run:
        pid = await seen_running(sandbox, run)
        os.kill(pid, signal.SIGKILL)
        text = await the_alert(fake)
        assert "killed by SIGKILL after" in text.split("\n")[0]
        assert (await death_event(run))["data"]["cause"]["kind"] == "signal"


async def test_sigsegv_with_core_dumps_allowed_says_it_dumped_core(
    sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path
) -> None:
    crasher(sandbox, tmp_path, "echo up; exec sleep 600", "LimitCORE=infinity\n")
    async with watched(sandbox, fake) as run:
        pid = await seen_running(sandbox, run)
        os.kill(pid, signal.SIGSEGV)
        text = await the_alert(fake)
        cores = await asyncio.to_thread(lambda: list(tmp_path.glob("core*")))
        event = await death_event(run)
        if cores:  # core_pattern "core": the kernel wrote it in the working directory
            assert "dumped core (SIGSEGV)" in text.split("\n")[0]
            assert event["data"]["cause"]["kind"] == "core-dump"
        else:  # a core_pattern elsewhere (a pipe to a missing helper): killed, no core
            assert "killed by SIGSEGV" in text.split("\n")[0]


async def test_a_real_oom_kill_on_this_cgroup_v1_host_is_enforced_and_said_as_sigkill(
    sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path
) -> None:
    """The README's known limit, shown: `MemoryMax=` is enforced here (nobody but the kernel
    kills the unit), but systemd says `Result=signal` and no OOM count survives the unit's
    v1 memory cgroup, so the alert says SIGKILL, never a guess."""
    go = tmp_path / "go"
    os.mkfifo(go)
    grow = f'{sys.executable} -c "s = chr(120) * (400 << 20)"'  # 400 MiB, every page written
    crasher(sandbox, tmp_path, f"echo up; read x < {go}; exec {grow}", "MemoryMax=64M\n")
    async with watched(sandbox, fake) as run:
        await seen_running(sandbox, run)
        await asyncio.to_thread(go.write_text, "grow\n")
        text = await the_alert(fake)
        assert sandbox.show(UNIT, "Result", "ExecMainStatus") == {
            "Result": "signal",
            "ExecMainStatus": "9",
        }
        assert "killed by SIGKILL after" in text.split("\n")[0], text
        assert (await death_event(run))["data"]["cause"]["kind"] == "signal"
        print(f"\nOOM alert: {text.splitlines()[0]}")


async def test_a_watchdog_that_is_never_fed_says_watchdog(
    sandbox: Sandbox, fake: FakeBotApi, tmp_path: Path
) -> None:
    crasher(sandbox, tmp_path, "echo waiting for nothing; exec sleep 600", "WatchdogSec=4\n")
    async with watched(sandbox, fake) as run:
        await seen_running(sandbox, run)
        text = await the_alert(fake)
        assert "killed by its watchdog" in text.split("\n")[0]
        assert (await death_event(run))["data"]["cause"]["kind"] == "watchdog"


async def test_a_sigstopped_dashboard_is_told_stopped_with_no_cpu_time_moved(
    sandbox: Sandbox, fake: FakeBotApi
) -> None:
    """The hang's alert, its failure event, its incident and `why` carry the /proc evidence."""
    body = f"ports = [{sandbox.dashboard_port}]\n" + http_probe(sandbox)
    targets = target_toml("dashboard", "dashboard.service", body)
    async with running(sandbox, settings(sandbox, fake, targets)) as run:
        probe = next(r for r in run.daemon.fleet.runs if r.target.name == "dashboard")
        await until(lambda: probe.answered_at is not None, 15, "a good answer to the probe")
        pid = sandbox.main_pid("dashboard.service")
        assert pid > 1
        os.kill(pid, signal.SIGSTOP)
        try:
            text = await the_alert(fake)
            event = await death_event(run, "dashboard", "status")
            _code, history = await run.get("/history/dashboard")
            why = await asyncio.to_thread(_why, run.url, "dashboard")
        finally:
            os.kill(pid, signal.SIGCONT)
        first = text.split("\n")[0]
        assert f"hung: pid {pid} stopped (T), no CPU time moved in " in first, text
        assert f"process: pid {pid} stopped (T)" in text and "<pre>probe: http no answer" in text
        assert " ago; usually answers in " in text  # what the probe saw before
        assert event["data"]["cause"]["kind"] == "hang"
        assert event["data"]["cause"]["words"] in first
        assert history["incidents"][0]["cause"] == event["data"]["cause"]["words"]
        assert f"  cause: hung: pid {pid} stopped (T), no CPU time moved" in why, why
        print(f"\nhang alert: {text}")


async def _journal_fields() -> str:
    """What the journal holds of the last lines (for the message of a failed assertion)."""
    done = await asyncio.to_thread(
        subprocess.run,
        ["journalctl", "--no-pager", "-o", "json", "-n", "3"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    keep = ("MESSAGE", "_PID", "_SYSTEMD_INVOCATION_ID", "_SYSTEMD_UNIT", "_SYSTEMD_USER_UNIT")
    return "\n".join(
        str({k: v for k, v in json.loads(line).items() if k in keep})
        for line in done.stdout.splitlines()
        if line.startswith("{")
    )


def _why(url: str, target: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "supervisor", "why", target, "--url", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
