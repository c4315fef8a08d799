"""The last word's words, from the unit's properties; and its sending, against the fake Bot API
over real HTTP (the same path, `alerts/sending.py`, that alerts take)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from supervisor.alerts import lastword
from supervisor.config import Secret, TelegramConfig

UNIT = "sidecar-supervisor.service"
TARGETS = ["trader", "dashboard"]


def words(**props: str) -> str:
    return lastword.message(props, "box-1", UNIT, TARGETS)


def test_start_limit_after_crashes_names_host_reason_restarts_and_where_to_look() -> None:
    # What systemd 252 shows once the start limit stops a crash loop: the last run's Result.
    text = words(
        Result="exit-code",
        ExecMainCode="1",
        ExecMainStatus="1",
        NRestarts="9",
        StateChangeTimestamp="Tue 2025-01-07 10:00:00 UTC",
    )
    head, systemd, targets, look, again, when = text.splitlines()
    assert head == (
        "🔴 <b>CRITICAL</b> sidecar-supervisor on box-1 has stopped for good: it exited with "
        "status 1; systemd gave up restarting it after 9 restarts (start limit)"
    )
    assert systemd == "systemd: result exit-code, last exit status 1, 9 automatic restarts"
    assert targets == "not watched now: trader, dashboard"
    assert look == "look: <code>journalctl --user -u sidecar-supervisor</code>"
    assert "systemctl --user reset-failed sidecar-supervisor" in again
    assert when == "<i>failed at Tue 2025-01-07 10:00:00 UTC</i>"


def test_exit_78_says_the_config_is_invalid() -> None:
    props = {"Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": "78"}
    assert (
        lastword.reason(props) == "its config is invalid (exit 78), so systemd does not restart it"
    )
    assert lastword.last_exit(props) == "status 78 (bad config)"
    assert "last exit status 78 (bad config), 0 automatic restarts" in words(**props, NRestarts="0")


def test_a_start_limit_result_or_a_hand_run_adds_no_restart_words() -> None:
    hit = {"Result": "start-limit-hit", "NRestarts": "4"}
    assert lastword.reason(hit) == "systemd gave up restarting it (start limit hit)"
    by_hand = {"Result": "success", "NRestarts": "2"}
    assert lastword.reason(by_hand) == "systemd reports no failure (was this run by hand?)"


def test_watchdog_kills_until_the_limit() -> None:
    props = {"Result": "watchdog", "ExecMainCode": "2", "ExecMainStatus": "6", "NRestarts": "3"}
    assert lastword.reason(props) == (
        "it stopped answering systemd's watchdog and was killed; "
        "systemd gave up restarting it after 3 restarts (start limit)"
    )


def test_other_exit_statuses_and_signals() -> None:
    assert lastword.reason(
        {"Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": "75"}
    ) == ("it exited with status 75 (over its hard memory limit)")
    killed = {"Result": "watchdog", "ExecMainCode": "2", "ExecMainStatus": "6"}
    assert lastword.reason(killed) == "it stopped answering systemd's watchdog and was killed"
    assert lastword.last_exit(killed) == "killed by SIGABRT"
    assert (
        lastword.last_exit({"ExecMainCode": "3", "ExecMainStatus": "11"})
        == "dumped core on SIGSEGV"
    )
    assert (
        lastword.last_exit({"ExecMainCode": "2", "ExecMainStatus": "99"}) == "killed by signal 99"
    )


def test_when_systemd_could_not_be_asked_it_still_says_what_it_knows() -> None:
    text = lastword.message({}, "box-1", UNIT, [])
    assert "has stopped for good: it failed (systemd could not be asked)" in text
    assert "result unknown, last exit unknown, ? automatic restarts" in text
    assert "not watched" not in text  # no targets known: no empty line about them
    assert "journalctl --user -u sidecar-supervisor" in text


def test_a_long_fleet_is_cut_so_the_message_stays_whole() -> None:
    text = lastword.message({}, "box-1", UNIT, [f"target-{i:03d}" for i in range(500)])
    (line,) = [line for line in text.splitlines() if line.startswith("not watched now:")]
    assert line.startswith("not watched now: target-000, target-001, ")
    assert line.endswith(" more")
    assert len(line) < 1100
    assert text.endswith("systemctl --user start sidecar-supervisor</code>")


def test_everything_from_outside_is_escaped() -> None:
    text = lastword.message({"Result": "<b>odd</b>"}, "box<&>", UNIT, ["a&b"])
    assert "box&lt;&amp;&gt;" in text
    assert "&lt;b&gt;odd&lt;/b&gt;" in text
    assert "a&amp;b" in text


# -- sending --------------------------------------------------------------------------------

CHAT_A, CHAT_B = 111, 222


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


def telegram(fake: FakeBotApi, *chats: int) -> TelegramConfig:
    return TelegramConfig(
        token=Secret(fake.token), chat_ids=list(chats), api_url=fake.url, timeout_s=2
    )


def tries(fake: FakeBotApi, chat_id: int) -> int:
    return sum(1 for c in fake.calls("sendMessage") if c.params.get("chat_id") == chat_id)


async def test_a_failed_send_is_tried_again_until_it_gets_through(
    fake: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next(1, 502, chat_id=CHAT_A)
    with caplog.at_level(logging.INFO):
        missed = await lastword.deliver(telegram(fake, CHAT_A, CHAT_B), fake.token, "bye", 20)
    assert missed == []
    assert (tries(fake, CHAT_A), tries(fake, CHAT_B)) == (2, 1)
    assert [m["text"] for m in fake.sent] == ["bye", "bye"]
    assert "sending the last word to chat 111 failed (attempt 1):" in caplog.text
    assert "retrying in 1 s" in caplog.text
    assert "sent the last word to chat 111" in caplog.text


async def test_telegrams_wait_is_kept_as_for_alerts(
    fake: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    fake.rate_limit_next(1, retry_after=2, chat_id=CHAT_A)
    assert await lastword.deliver(telegram(fake, CHAT_A), fake.token, "bye", 20) == []
    assert tries(fake, CHAT_A) == 2
    assert "retrying in 2 s" in caplog.text  # Telegram's 2 s, not the backoff's first 1 s


async def test_a_refused_chat_is_missed_at_once_and_the_next_still_gets_it(
    fake: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next(1, 400, "Bad Request: chat not found", chat_id=CHAT_A)
    missed = await lastword.deliver(telegram(fake, CHAT_A, CHAT_B), fake.token, "bye", 20)
    assert missed == [CHAT_A]
    assert (tries(fake, CHAT_A), tries(fake, CHAT_B)) == (1, 1)
    assert "cannot send the last word to chat 111: sendMessage: Chat not found" in caplog.text


async def test_a_rejected_token_misses_every_chat_without_retrying(fake: FakeBotApi) -> None:
    wrong = fake.token.split(":")[0] + ":" + "x" * len(fake.token.split(":")[1])
    missed = await lastword.deliver(telegram(fake, CHAT_A, CHAT_B), wrong, "bye", 20)
    assert missed == [CHAT_A, CHAT_B]
    assert (tries(fake, CHAT_A), tries(fake, CHAT_B)) == (1, 1)


async def test_unreachable_telegram_is_given_up_before_the_deadline(
    fake: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    await fake.down()
    with caplog.at_level(logging.WARNING):
        assert await lastword.deliver(telegram(fake, CHAT_A), fake.token, "bye", 2.5) == [CHAT_A]
    # Tried at once and after 1 s; the next wait (2 s) would end past the deadline.
    assert "failed (attempt 1)" in caplog.text
    assert "failed (attempt 2)" not in caplog.text
    assert "cannot send the last word to chat 111: sendMessage:" in caplog.text
    assert "giving up" in caplog.text
