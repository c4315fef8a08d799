"""A failure alert carries its cause (first line) and last lines (<pre>), within Telegram's limit.

Delivery runs as the daemon runs it, against the fake Bot API over real HTTP; `why` is the
callable the composition layer passes in (here: one that answers at once, or never).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from supervisor.alerts.commands import Commands
from supervisor.alerts.delivery import AlertService, Evidence, Why
from supervisor.alerts.outbox import Outbox
from supervisor.alerts.policy import Alert, AlertPolicy, Severity, format_html
from supervisor.alerts.text import LIMIT, units, with_evidence
from supervisor.app.subscribers import to_history
from supervisor.config import AlertsConfig, Secret, TelegramConfig
from supervisor.history.events import Kind
from supervisor.model import Hold
from tests.clock import FakeClock

CHAT = 111
Recorded = list[tuple[Kind, str, dict[str, object]]]


def failing(clock: FakeClock, target: str = "crasher") -> Alert:
    now = clock.time()
    return Alert(
        key=f"{target}:health",
        target=target,
        severity=Severity.WARNING,
        summary="failing",
        reason="failed (failed), result exit-code",
        at=now,
        opened_at=now,
    )


def test_cause_on_the_first_line_and_lines_in_pre() -> None:
    clock = FakeClock()
    text = with_evidence(
        format_html(failing(clock), "vm"),
        "exited with status 3 after 2 s",
        ("starting", "FATAL lost connection to exchange <&>"),
    )
    first = text.split("\n")[0]
    assert first.endswith("crasher on vm: failing: exited with status 3 after 2 s")
    assert "<pre>starting\nFATAL lost connection to exchange &lt;&amp;&gt;</pre>" in text


def test_many_long_lines_keep_the_newest_within_the_limit() -> None:
    clock = FakeClock()
    lines = tuple(f"{i:03d} " + "é" * 400 for i in range(200))
    text = with_evidence(format_html(failing(clock), "vm"), "killed by SIGKILL", lines)
    assert units(text) <= LIMIT
    shown = re.search(r"<pre>(.*)</pre>", text, re.S)
    assert shown is not None
    kept = html.unescape(shown.group(1)).split("\n")
    assert kept[-1].startswith("199 ") and len(kept) < 200


def test_one_line_longer_than_the_room_is_cut_not_dropped() -> None:
    clock = FakeClock()
    text = with_evidence(format_html(failing(clock), "vm"), "x", ("<" * 10_000,))
    assert units(text) <= LIMIT
    assert "<pre>&lt;&lt;" in text and text.endswith("…</pre>")


@contextlib.asynccontextmanager
async def delivering(
    fake: FakeBotApi, why: Why, clock: FakeClock | None = None
) -> AsyncIterator[tuple[AlertService, Recorded]]:
    clock = clock or FakeClock(float(int(time.time())))
    telegram = TelegramConfig(token=Secret(fake.token), chat_ids=[CHAT], api_url=fake.url)
    config = AlertsConfig(telegram=telegram)
    recorded: Recorded = []

    class Events:
        def record(
            self, kind: Kind, summary: str, target: str | None = None, **data: object
        ) -> None:
            recorded.append((kind, summary, data))

    commands = Commands(
        clock=clock,
        policy=AlertPolicy(config, clock, {}),
        targets=lambda: ["crasher"],
        status=lambda: "",
        restart=lambda name: asyncio.sleep(0, ""),
        reset=lambda name: True,
        hold=lambda name, for_s, reason, by: Hold(until=clock.time() + (for_s or 1800)),
        release=lambda name, by: None,
    )
    service = AlertService(
        config, clock=clock, outbox=Outbox(), commands=commands, host="vm",
        changed=lambda: None, set_note=lambda note: None, emit=to_history(Events()), why=why,
    )  # fmt: skip
    task = asyncio.create_task(service.run())
    try:
        yield service, recorded
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


async def test_the_alert_carries_cause_and_lines(fake: FakeBotApi) -> None:
    async def why(target: str, since: float) -> Evidence | None:
        return "exited with status 3 after 1.0 s", ("FATAL lost connection to exchange",)

    async with delivering(fake, why) as (service, recorded):
        service.publish([failing(FakeClock(float(int(time.time()))))])
        (sent,) = await fake.wait_for_messages(1)
    text = str(sent["text"])
    assert "failing: exited with status 3" in text.split("\n", maxsplit=1)[0]
    assert "<pre>FATAL lost connection to exchange</pre>" in text
    (kind, summary, data), *_ = recorded
    assert kind is Kind.ALERT and summary.endswith("failing: exited with status 3 after 1.0 s")
    assert data["log"] == ["FATAL lost connection to exchange"]


async def test_a_cause_that_never_comes_does_not_hold_the_alert(fake: FakeBotApi) -> None:
    """`why` is bounded by its caller (Autopsies.wait); a failing one costs only the cause."""

    async def why(target: str, since: float) -> Evidence | None:
        raise RuntimeError("a bug of ours")

    async with delivering(fake, why) as (service, _recorded):
        service.publish([failing(FakeClock(float(int(time.time()))))])
        (sent,) = await fake.wait_for_messages(1)
    assert "<pre>" not in str(sent["text"])
    assert str(sent["text"]).split("\n")[0].endswith("crasher on vm: failing")


async def test_an_alert_waiting_for_its_cause_is_queued_at_shutdown(fake: FakeBotApi) -> None:
    """settle() (before the final save) puts it in the outbox: a stop never loses it."""
    never = asyncio.Event()

    async def why(target: str, since: float) -> Evidence | None:
        await never.wait()
        return None

    async with delivering(fake, why) as (service, _recorded):
        service.publish([failing(FakeClock(float(int(time.time()))))])
        assert len(service.outbox) == 0  # still waiting for the cause
        service.settle()
        assert len(service.outbox) == 1
        (sent,) = await fake.wait_for_messages(1)
    assert "crasher on vm: failing" in str(sent["text"])


async def test_a_resolved_decided_while_its_failing_waits_for_the_cause_comes_after_it(
    fake: FakeBotApi,
) -> None:
    """The outbox keeps a chat in order, but only from the moment each alert is queued: a
    "resolved" decided while its "failing" still waited for the cause went out first."""
    cause = asyncio.Event()

    async def why(target: str, since: float) -> Evidence | None:
        await cause.wait()
        return "killed by SIGKILL", ("last words",)

    clock = FakeClock(float(int(time.time())))
    opened = failing(clock)
    back = Alert(
        key=opened.key,
        target=opened.target,
        severity=Severity.RESOLVED,
        summary="resolved after 0s",
        at=clock.time(),
        opened_at=opened.opened_at,
    )
    async with delivering(fake, why) as (service, _recorded):
        service.publish([opened])
        service.publish([back])
        other = failing(clock, target="other")
        service.publish([replace(other, severity=Severity.RESOLVED, summary="resolved")])
        first = (await fake.wait_for_messages(1))[0]  # another target's is not held back
        assert "other on vm: resolved" in str(first["text"])
        cause.set()
        sent = await fake.wait_for_messages(3)
    heads = [str(m["text"]).split("\n")[0] for m in sent[1:]]
    assert heads[0].endswith("crasher on vm: failing: killed by SIGKILL")
    assert heads[1].endswith("crasher on vm: resolved after 0s")


async def test_the_alert_says_what_waiting_for_its_cause_cost(fake: FakeBotApi) -> None:
    """Measured with the clock: the alert event carries the wait (the benchmark reads it)."""
    clock = FakeClock(float(int(time.time())))

    async def why(target: str, since: float) -> Evidence | None:
        clock.advance(0.5)  # the longest Autopsies.wait lets a reading take
        return "killed by SIGKILL", ("last words",)

    async with delivering(fake, why, clock) as (service, recorded):
        service.publish([failing(clock)])
        await fake.wait_for_messages(1)
        service.publish([replace(failing(clock), severity=Severity.RESOLVED, summary="ok")])
        await fake.wait_for_messages(2)
    failed, resolved = [data for _kind, _s, data in recorded if "severity" in data]  # queued
    assert failed["causeWaitS"] == 0.5
    assert "causeWaitS" not in resolved  # nothing waited for a cause
