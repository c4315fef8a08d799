"""The supervisor's last word, installed by install_services.sh into the sandbox.

When its unit fails for good, OnFailure= starts the oneshot, which sends exactly one message
to the (fake) Telegram Bot API with the last config that was valid.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.fakes.telegram_wire import JsonDict
from supervisor.config.file import LAST_VALID
from tests.integration.installed import LAST_WORD, UNIT, Installed
from tests.polling import until

pytestmark = pytest.mark.sandbox
CHAT = 777001
OTHER_CHAT = 777002
LOOK = "journalctl --user -u sidecar-supervisor"
# The crash loop reaches its start limit in a few seconds rather than in minutes.
FAST_FAIL = "[Unit]\nStartLimitIntervalSec=120\nStartLimitBurst=3\n[Service]\nRestartSec=100ms\n"
QUIET_S = 3.0  # after the last word, how long no second one may come


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


def copy_path(inst: Installed) -> Path:
    """Where the daemon keeps its copy (the config sets no state_dir: the default)."""
    return inst.sandbox.home / ".local" / "state" / "sidecar-supervisor" / LAST_VALID


def token_file(inst: Installed, fake: FakeBotApi) -> Path:
    path = inst.sandbox.home / "telegram.token"
    path.write_text(fake.token + "\n")
    path.chmod(0o600)
    return path


def with_telegram(inst: Installed, fake: FakeBotApi, port: int | None = None) -> str:
    text = inst.good_config()
    if port is not None:
        text = text.replace(f"port = {inst.port}\n", f"port = {port}\n")
    return text + (
        f'[alerts.telegram]\ntoken_file = "{token_file(inst, fake)}"\nchat_ids = [{CHAT}]\n'
        f'api_url = "{fake.url}"\ncommands = false\ntimeout_s = 2\n'
    )


async def reload_with(inst: Installed, text: str) -> None:
    """Put `text` in force by a reload; the daemon then keeps it as the last valid config."""
    inst.config.write_text(text)
    inst.sandbox.systemctl("reload", UNIT)
    await until(
        lambda: copy_path(inst).is_file() and copy_path(inst).read_text() == text,
        20,
        "the reloaded config kept as the last valid one",
        step=0.05,
    )


def last_words(fake: FakeBotApi) -> list[JsonDict]:
    return [m for m in fake.sent if LOOK in m["text"]]


async def one_last_word(inst: Installed, fake: FakeBotApi) -> tuple[JsonDict, float]:
    """Wait for the last word and the oneshot's clean end; then no second word may come.

    Returns the word and its delay: from the unit entering "failed" to the request reaching
    the fake (both CLOCK_MONOTONIC on this machine).
    """
    box = inst.sandbox
    await until(lambda: last_words(fake), 60, "the last word", step=0.05)
    await until(
        lambda: (
            box.show(LAST_WORD, "ActiveState", "Result")
            == {"ActiveState": "inactive", "Result": "success"}
        ),
        30,
        "the last-word oneshot to finish cleanly",
        step=0.05,
    )
    with pytest.raises(AssertionError, match="timed out"):
        await until(lambda: len(last_words(fake)) > 1, QUIET_S, "a second last word", step=0.05)
    (word,) = last_words(fake)
    (call,) = [c for c in fake.calls("sendMessage") if LOOK in str(c.params.get("text"))]
    failed_at = int(inst.show("InactiveEnterTimestampMonotonic")["InactiveEnterTimestampMonotonic"])
    return word, call.at - failed_at / 1e6


async def back_to_normal(inst: Installed) -> None:
    box = inst.sandbox
    inst.config.write_text(inst.good_config())
    box.systemctl("reset-failed", UNIT, LAST_WORD, check=False)
    box.systemctl("start", UNIT)
    await until(lambda: inst.health() is not None, 20, "the supervisor back", step=0.05)


def test_installed_beside_the_supervisor_and_kept_at_start(installed: Installed) -> None:
    text = installed.last_word_file.read_text()
    assert (
        f"ExecStart={installed.venv}/bin/supervisor last-word --config {installed.config}" in text
    )
    assert installed.show("OnFailure")["OnFailure"] == LAST_WORD
    props = installed.sandbox.show(LAST_WORD, "Type", "Restart", "OnFailure", "RemainAfterExit")
    # A oneshot that is never restarted and triggers nothing when it fails: it cannot loop.
    assert props == {"Type": "oneshot", "Restart": "no", "OnFailure": "", "RemainAfterExit": "no"}
    copy = copy_path(installed)
    assert copy.read_text() == installed.good_config()  # kept at start-up
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    result = installed.run("--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"unit: {installed.last_word_file} is up to date" in result.stdout


async def last_word_cli(inst: Installed, log: Path, *args: str) -> int:
    """Run `supervisor last-word` by hand as the unit would, its stderr a journal stream."""
    with log.open("w") as err:
        st = os.fstat(err.fileno())
        env = {
            **os.environ,
            **inst.sandbox.env(),
            "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",  # how systemd says "the journal"
        }
        proc = await asyncio.create_subprocess_exec(
            str(inst.venv / "bin" / "supervisor"),
            "last-word",
            "--config",
            str(inst.config),
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )
        return await proc.wait()


async def test_it_says_in_the_journal_when_it_cannot_send(
    installed: Installed, fake: FakeBotApi, tmp_path: Path
) -> None:
    """Run while the supervisor runs and holds its state lock: the last word never needs it."""
    await reload_with(installed, with_telegram(installed, fake))
    log = tmp_path / "journal.txt"
    await fake.down()
    assert await last_word_cli(installed, log, "--within", "3") == 1
    text = log.read_text()
    assert "<4>supervisor.alerts.lastword: sending the last word to chat 777001 failed" in text
    assert "<3>supervisor.alerts.lastword: cannot send the last word to chat 777001:" in text
    assert "giving up" in text
    await fake.up()
    fake.fail_next(1, 502)  # Telegram answers once with an error, then works: one retry
    assert await last_word_cli(installed, log) == 0, log.read_text()
    assert len(last_words(fake)) == 1
    assert "<6>supervisor.alerts.lastword: sent the last word to chat 777001" in log.read_text()
    token = installed.sandbox.home / "telegram.token"
    token.rename(token.with_suffix(".aside"))
    try:
        assert await last_word_cli(installed, log) == 1
        assert f"<3>supervisor.alerts.lastword: cannot send the last word: cannot read {token}" in (
            log.read_text()
        )
    finally:
        token.with_suffix(".aside").rename(token)
    await reload_with(installed, installed.good_config())
    assert await last_word_cli(installed, log) == 1
    assert "sets no [alerts.telegram] or alerts are off" in log.read_text()
    assert fake.token not in log.read_text()
    assert installed.show("ActiveState")["ActiveState"] == "active"  # it was up all along


# The two that take the supervisor down come last: the second leaves it down.
async def test_a_crash_loop_past_the_start_limit_sends_one_last_word(
    installed: Installed, fake: FakeBotApi
) -> None:
    box = installed.sandbox
    await reload_with(installed, with_telegram(installed, fake))
    dropin = installed.unit_file.with_name(f"{UNIT}.d") / "fast-fail.conf"
    dropin.parent.mkdir(exist_ok=True)
    dropin.write_text(FAST_FAIL)
    holder = socket.socket()
    try:
        box.daemon_reload()
        box.systemctl("reset-failed", UNIT)
        # A valid config whose daemon exits at start: its HTTP port is taken.
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        installed.config.write_text(with_telegram(installed, fake, holder.getsockname()[1]))
        box.systemctl("restart", UNIT, check=False)
        word, took = await one_last_word(installed, fake)
        props = installed.show("ActiveState", "Result", "NRestarts")
        # The start limit stopped the restarts; systemd keeps the last run's Result.
        assert (props["ActiveState"], props["Result"]) == ("failed", "exit-code")
        restarts = int(props["NRestarts"])
        assert restarts >= 2
        assert word["chat_id"] == CHAT
        text = word["text"]
        assert f"on {socket.gethostname()} has stopped for good: it exited with status 1" in text
        assert f"systemd gave up restarting it after {restarts} restarts (start limit)" in text
        assert "not watched now: trader" in text
        assert 0 < took < 60
        print(f"last word {took:.2f} s after the start limit was hit")
    finally:
        holder.close()
        dropin.unlink()
        box.daemon_reload()
        await back_to_normal(installed)


async def test_exit_78_sends_one_last_word_with_the_last_valid_config(
    installed: Installed, fake: FakeBotApi
) -> None:
    box = installed.sandbox
    good = with_telegram(installed, fake)
    await reload_with(installed, good)
    # Broken, and naming another chat: a last word that read it would go there, or nowhere.
    broken = good.replace(f"[{CHAT}]", f"[{OTHER_CHAT}]").replace(
        f"port = {installed.port}", 'port = "not a port"'
    )
    installed.config.write_text(broken)
    try:
        box.systemctl("restart", UNIT, check=False)
        word, took = await one_last_word(installed, fake)
        props = installed.show("ActiveState", "Result", "ExecMainStatus")
        assert (props["ActiveState"], props["Result"], props["ExecMainStatus"]) == (
            "failed",
            "exit-code",
            "78",
        )
        assert word["chat_id"] == CHAT
        assert not [m for m in fake.sent if m["chat_id"] == OTHER_CHAT]
        assert f"on {socket.gethostname()} has stopped for good" in word["text"]
        assert "its config is invalid (exit 78)" in word["text"]
        assert copy_path(installed).read_text() == good  # the broken one was never kept
        assert 0 < took < 60
        print(f"last word {took:.2f} s after exit 78")
    finally:
        # Its good config back, not started (about 10 s under CPUQuota=10%): the last test
        # of the module; the next module's `installed` starts it.
        installed.config.write_text(installed.good_config())
        box.systemctl("reset-failed", UNIT, LAST_WORD, check=False)
