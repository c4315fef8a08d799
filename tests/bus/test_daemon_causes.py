"""The whole daemon on a fake systemd: a death's cause reaches the alert, /events and /history.

The fake gives what this host's systemd will not on demand (`Result=oom-kill`); the wiring
from the bus to Telegram, the history and `supervisor why` is the daemon's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devtools.fakes.telegram_api import FakeBotApi
from supervisor.why import explain
from tests.bus.test_daemon import NO_RECOVERY, alerts_toml, config, running, target, texts
from tests.fakes.dbus_daemon import BusDaemon
from tests.fakes.systemd_bus import FakeSystemd
from tests.integration.harness import get_json
from tests.polling import until

GIB = 1024**3


async def test_an_oom_kill_is_said_in_the_alert_events_and_history(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    async with FakeBotApi() as fake:
        cfg = config(
            tmp_path,
            target("trader", NO_RECOVERY),
            "[alerts]\nfailure_threshold = 1\n" + alerts_toml(fake),
        )
        async with running(bus, cfg) as run:
            started = systemd.unit("trader.service")["ExecMainStartTimestamp"]
            systemd.set_unit(
                "trader.service", quiet=True, InvocationID=bytes(range(16)), MemoryMax=2 * GIB,
                ExecMainExitTimestamp=started + 90_000_000,
            )  # fmt: skip
            systemd.set_unit(
                "trader.service", ActiveState="failed", SubState="failed", Result="oom-kill",
                MainPID=0, ExecMainCode=2, ExecMainStatus=9,
            )  # fmt: skip
            await fake.wait_for_messages(1, timeout=10)
            first = texts(fake)[0].split("\n")[0]
            assert "trader" in first
            assert first.endswith(
                "failing: killed by the kernel's OOM killer (MemoryMax 2.0 GiB) after 1 min 30 s"
            )
            url = f"http://127.0.0.1:{run.inside.port}"

            def events() -> list[dict[str, Any]]:
                _code, page = get_json(f"{url}/events?target=trader")
                return list(page["events"])

            # /events reads the store, which its own thread writes: the death is queued there
            # before the alert is sent, but on a loaded host it may not be written yet.
            timeline = await until(events, 10, "the death in /events", ok=_death, in_thread=True)
            death = _death(timeline)
            assert death is not None
            assert death["summary"].startswith("trader died: killed by the kernel's OOM killer")
            assert death["data"]["cause"]["kind"] == "oom-kill"
            assert death["data"]["invocation"] == bytes(range(16)).hex()
            assert explain("trader", timeline).startswith(
                "trader: killed by the kernel's OOM killer"
            )

            def incident_cause() -> object:
                _code, doc = get_json(f"{url}/history/trader")
                return (doc.get("incidents") or [{}])[0].get("cause")

            cause = await until(incident_cause, 10, "the incident's cause", in_thread=True)
            assert str(cause).startswith("killed by the kernel's OOM killer")


def _death(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The unit event that carries a death's cause, if there is one."""
    return next((e for e in events if e["kind"] == "unit" and "cause" in e["data"]), None)
