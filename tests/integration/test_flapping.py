"""A unit that keeps crashing is one incident, not one per crash (the real sandbox, recovery
on, Telegram's fake Bot API counting every message). Long on purpose: three minutes."""

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
CRASH_AFTER_S = 20
RUN_FOR_S = 180


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


@pytest.fixture
def flappy(sandbox: Sandbox) -> Iterator[str]:
    """A unit that exits with status 1 twenty seconds after each start."""
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
async def test_a_unit_crashing_every_20_s_for_3_minutes_sends_at_most_3_messages(
    sandbox: Sandbox, fake: FakeBotApi, flappy: str
) -> None:
    recovery = "max_attempts = 100\nwindow_s = 900"  # recovery goes on, with its backoff
    cfg = config(sandbox, target_toml("flappy", flappy, recovery=recovery), extra=alerts_toml(fake))
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with running(sandbox, cfg) as run:
        await until(lambda: run.target("flappy").flapping is not None, RUN_FOR_S, "flapping")
        _code, doc = await run.get("/health/flappy")
        flapping = doc["checks"]["flappy"][0]["flapping"]
        assert flapping["failures"] >= 3
        _code, metrics = await run.get_text("/metrics")
        assert 'supervisor_target_flapping{target="flappy"} 1.0' in metrics
        await until(lambda: loop.time() - began > RUN_FOR_S, RUN_FOR_S, "three minutes", step=0.5)
        said = texts(fake)
        restarts = actions(run, "flappy", "restart")
        print(
            f"\n{RUN_FOR_S} s of a crash every {CRASH_AFTER_S} s: {restarts:.0f} restarts, "
            f"{len(said)} messages: {said}"
        )
        assert restarts >= 4  # it really kept crashing and being restarted
        assert 1 <= len(said) <= 3
        assert sum("flapping" in s for s in said) == 1
        assert "failures in" in next(s for s in said if "flapping" in s)
