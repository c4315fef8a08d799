"""A unit that keeps crashing is one incident, not one per crash (the real sandbox, recovery
on, Telegram's fake Bot API counting every message).

75 s, not the 3 minutes of issue 19's wording: what makes a crash worth an alert and a
resolved of its own is not the time between crashes but being down for `failure_threshold`
rounds, then up past a pass (at least every 5 s) once settled. Here each crash after the first
is down `DOWN_S` (what is left of the recovery backoff), past the 2 rounds of 5 s an incident
needs, and each life lasts `CRASH_AFTER_S`, past the next pass: without flapping, every crash
after the second would be a "failing" and a "resolved" of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.sandbox import Sandbox
from tests.integration.bot import alerts_toml, texts
from tests.integration.harness import config, running, target_toml
from tests.integration.test_recovery import actions
from tests.polling import until

pytestmark = pytest.mark.sandbox
UNIT = "flappy.service"
CRASH_AFTER_S = 8
DOWN_S = 8  # how long each crash after the first stays down
# Backoff counts from the previous attempt, whose process lived CRASH_AFTER_S of it.
BACKOFF_S = CRASH_AFTER_S + DOWN_S
RUN_FOR_S = 75  # crashes at about 8, 16, 32, 48 and 64 s (flapping from the third)
# An incident after 2 rounds of 5 s (a probe-less unit's round): the first crash, restarted at
# once, is none; every later one, down 8 s, is one.
FAILURE_THRESHOLD = 2


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


@pytest.fixture
def flappy(sandbox: Sandbox) -> Iterator[str]:
    """A unit that exits with status 1 a few seconds after each start."""
    sandbox.install_unit(
        UNIT,
        "[Service]\nType=simple\n"
        f'ExecStart=/bin/sh -c "sleep {CRASH_AFTER_S}; exit 1"\n'
        "Restart=no\n",
    )
    sandbox.systemctl("start", UNIT)
    yield UNIT
    sandbox.systemctl("stop", UNIT, check=False)
    (sandbox.unit_dir / UNIT).unlink(missing_ok=True)
    sandbox.daemon_reload()
    sandbox.reset_failed()


@pytest.mark.timeout(RUN_FOR_S + 120)
async def test_a_unit_crashing_8_s_after_each_start_for_75_s_sends_at_most_3_messages(
    sandbox: Sandbox, fake: FakeBotApi, flappy: str
) -> None:
    # Recovery goes on, with its backoff: at once, then BACKOFF_S after each attempt.
    recovery = f"max_attempts = 100\nwindow_s = 900\nbackoff_s = [0, {BACKOFF_S}]"
    target = target_toml("flappy", flappy, recovery=recovery)
    cfg = config(sandbox, target, extra=alerts_toml(fake, failure_threshold=FAILURE_THRESHOLD))
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with running(sandbox, cfg) as run:
        await until(lambda: run.target("flappy").flapping is not None, RUN_FOR_S, "flapping")
        _code, doc = await run.get("/health/flappy")
        flapping = doc["checks"]["flappy"][0]["flapping"]
        assert flapping["failures"] >= 3
        _code, metrics = await run.get_text("/metrics")
        assert 'supervisor_target_flapping{target="flappy"} 1.0' in metrics
        await until(lambda: loop.time() - began > RUN_FOR_S, RUN_FOR_S, "the whole run", step=0.5)
        said = texts(fake)
        restarts = actions(run, "flappy", "restart")
        print(
            f"\n{RUN_FOR_S} s of a crash {CRASH_AFTER_S} s after each start: {restarts:.0f} "
            f"restarts, {len(said)} messages: {said}"
        )
        # It really kept crashing and being restarted. The 4th restart (about 56 s) ends the 4th
        # crash, the first after flapping began: down long enough for an alert of its own, and
        # up long enough for its resolved before the run ends.
        assert restarts >= 4
        assert 1 <= len(said) <= 3
        assert sum("flapping" in s for s in said) == 1
        assert "failures in" in next(s for s in said if "flapping" in s)
