"""The whole daemon on a fake systemd: detection to action, reload, losing the bus, chat.

The same paths as tests/integration, without a user manager: fast, and free to break the
bus or systemd in ways the real one will not on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from devtools.fakes.telegram_api import FakeBotApi
from supervisor.api.control import FILE_NAME as CONTROL_FILE
from supervisor.api.control import request
from supervisor.app.daemon import Daemon
from supervisor.config import Config, parse
from supervisor.history.events import Event, Kind
from supervisor.model import Status
from tests.fakes.dbus_daemon import BusDaemon
from tests.fakes.systemd_bus import FakeSystemd
from tests.inside import Inside
from tests.polling import until

CHAT = 111
STRANGER = 999
FAST = "[targets.recovery]\nbackoff_s = [0]\n"
NO_RECOVERY = "[targets.recovery]\nenabled = false\n"


def config(state_dir: Path, targets: str, extra: str = "") -> Config:
    """Breaker off (in-process, "our own CPU" is pytest's), HTTP on a free port."""
    text = (
        f'state_dir = "{state_dir}"\n{extra}\n[breaker]\nenabled = false\n'
        f'[http]\nhost = "127.0.0.1"\nport = 0\n{targets}'
    )
    return parse(tomllib.loads(text), env={})


def target(name: str, body: str = "") -> str:
    return f'[[targets]]\nname = "{name}"\nunit = "{name}.service"\n{body}'


class Running:
    """A daemon running in this event loop, on the fake's bus."""

    def __init__(self, daemon: Daemon, reload: asyncio.Event) -> None:
        self.daemon = daemon
        self.reload = reload

    @property
    def inside(self) -> Inside:
        """What the tests read of the daemon (not `daemon.parts`)."""
        return Inside(self.daemon)

    def status(self, name: str) -> Status:
        found = self.daemon.snapshot().target(name)
        assert found is not None, name
        return found.status

    def restarts(self, name: str, result: str) -> float:
        value = self.inside.sample(
            "supervisor_recovery_actions_total",
            {"target": name, "action": "restart", "result": result},
        )
        return value or 0.0


@contextlib.asynccontextmanager
async def running(
    bus: BusDaemon, cfg: Config, *, reloaded: Config | None = None
) -> AsyncIterator[Running]:
    """Run the daemon until the block ends; it must connect, and stop cleanly."""
    daemon = Daemon(
        cfg,
        env={"DBUS_SESSION_BUS_ADDRESS": bus.address},
        load_config=(lambda: reloaded) if reloaded else None,
    )
    stop, reload = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(daemon.run(stop, reload))
    try:
        await until(lambda: Inside(daemon).on_bus or task.done(), 5, "the daemon on the bus")
        if task.done():
            task.result()
        names = [t.name for t in cfg.targets]
        await until(
            lambda: all(daemon.snapshot().target(n).unit_state for n in names),  # type: ignore[union-attr]
            5,
            "every unit read",
        )
        yield Running(daemon, reload)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_dead_unit_is_seen_restarted_and_passes_again(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    async with running(bus, config(tmp_path, target("trader", FAST))) as run:
        assert run.status("trader") is Status.PASS
        systemd.set_unit(
            "trader.service", ActiveState="failed", SubState="failed", Result="signal", MainPID=0
        )
        await systemd.wait_job()
        await until(lambda: run.status("trader") is Status.PASS, 2, "trader pass again")
        assert [c.args for c in systemd.calls_to("RestartUnit")] == [("trader.service", "replace")]
        await until(lambda: run.restarts("trader", "done") == 1, 2, "the restart counted")


async def test_an_open_incident_is_counted_in_metrics_until_resolved(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    cfg = config(tmp_path, target("trader", NO_RECOVERY), "[alerts]\nfailure_threshold = 1\n")
    async with running(bus, cfg) as run:

        def open_incidents() -> float | None:
            return run.inside.sample("supervisor_alert_incidents_open")

        assert open_incidents() == 0
        systemd.set_unit(
            "trader.service", ActiveState="failed", SubState="failed", Result="signal", MainPID=0
        )
        await until(lambda: open_incidents() == 1, 3, "an incident open")
        systemd.set_unit("trader.service", ActiveState="active", SubState="running", MainPID=4242)
        # A unit with no probe is back once it stayed up SETTLE_S, seen by the next pass.
        await until(lambda: open_incidents() == 0, 10, "the incident resolved")


async def test_reload_watches_the_new_target_list(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    names = ("trader", "dashboard", "position-monitor")
    trader, dashboard, monitor = (target(n, NO_RECOVERY) for n in names)
    before = config(tmp_path, trader + dashboard)
    after = config(tmp_path, trader + monitor)
    async with running(bus, before, reloaded=after) as run:
        run.reload.set()
        await until(
            lambda: run.daemon.snapshot().target("position-monitor") is not None,
            2,
            "the new target list",
        )
        await until(lambda: run.status("position-monitor") is Status.PASS, 2, "new target read")
        assert run.daemon.snapshot().target("dashboard") is None
        assert run.status("trader") is Status.PASS
        # The dropped unit is no longer watched: its failure changes nothing.
        systemd.set_unit("dashboard.service", ActiveState="failed", SubState="failed")
        systemd.set_unit("position-monitor.service", ActiveState="failed", SubState="failed")
        await until(lambda: run.status("position-monitor") is Status.FAIL, 2, "monitor fail")
        assert run.inside.unit("dashboard.service") is None


async def test_losing_the_bus_makes_everything_unknown_until_it_is_back(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    async with running(bus, config(tmp_path, target("trader", FAST))) as run:
        bus.stop()
        await until(lambda: run.status("trader") is Status.UNKNOWN, 2, "trader unknown")
        snap = run.daemon.snapshot()
        assert snap.status is Status.WARN  # unknown is not failing: no alert, no restart
        assert any(n.startswith("D-Bus: bus connection") for n in snap.notes), snap.notes
        await systemd.close()
        bus.start()  # the same address again, and a systemd on it
        back = FakeSystemd(bus.address)
        back.add_unit("trader.service")
        await back.start()
        try:
            await until(lambda: run.status("trader") is Status.PASS, 3, "reconnected")
            assert run.daemon.snapshot().notes == ()
            assert back.calls_to("Subscribe")
            assert systemd.calls_to("RestartUnit") == back.calls_to("RestartUnit") == []
        finally:
            await back.close()


def alerts_toml(fake: FakeBotApi) -> str:
    return (
        f'[alerts.telegram]\ntoken = "{fake.token}"\nchat_ids = [{CHAT}]\n'
        f'api_url = "{fake.url}"\ncommands = true\ntimeout_s = 3\n'
    )


def texts(fake: FakeBotApi, chat_id: int = CHAT) -> list[str]:
    return [str(m["text"]) for m in fake.sent if m["chat_id"] == chat_id]


async def test_restart_by_chat_command_only_from_allowed_chats(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    async with FakeBotApi() as fake:
        cfg = config(
            tmp_path,
            target("dashboard", NO_RECOVERY),
            alerts_toml(fake),
        )
        async with running(bus, cfg):
            await fake.wait_for_request("getUpdates")
            fake.queue_message(STRANGER, "/restart dashboard")
            fake.queue_message(CHAT, "/restart sshd")
            await fake.wait_for_messages(1, 5)
            assert "'sshd' is not a configured target" in texts(fake)[0]
            fake.queue_message(CHAT, "/restart dashboard")
            await fake.wait_for_messages(2, 5)
            confirm = fake.sent[1]
            assert "Press the button" in str(confirm["text"])
            assert systemd.calls_to("RestartUnit") == []  # not before the button is pressed
            fake.queue_callback(STRANGER, "restart:dashboard", int(confirm["message_id"]))
            fake.queue_callback(CHAT, "restart:dashboard", int(confirm["message_id"]))
            await fake.wait_for_messages(3, 5)
            assert texts(fake)[2] == "restart dashboard: done"
            assert [c.args for c in systemd.calls_to("RestartUnit")] == [
                ("dashboard.service", "replace")
            ]
            assert texts(fake, STRANGER) == []


async def test_a_hold_and_its_release_reach_history_and_the_journal(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "supervisor.app.holding")
    heard: list[Event] = []
    async with running(bus, config(tmp_path, target("trader", NO_RECOVERY))) as run:
        stop = run.inside.listen(heard.append)
        sock = tmp_path / CONTROL_FILE
        ask = {"op": "hold", "target": "trader", "for_s": 60, "reason": "deploy"}
        assert (await asyncio.to_thread(request, sock, ask))["ok"]
        ask = {"op": "release", "target": "trader"}
        assert await asyncio.to_thread(request, sock, ask) == {"ok": True, "released": ["trader"]}
        await until(lambda: len(_holds(heard)) == 2, 2, "the hold and its release in history")
        stop()
    held, released = _holds(heard)
    by = str(held.data["by"])
    assert by.startswith("cli:") and held.target == released.target == "trader"
    assert held.summary.startswith("trader held until ") and held.summary.endswith(f"{by}: deploy")
    assert held.data["action"] == "set" and released.data == {"action": "released", "by": by}
    assert released.summary == f"hold on trader released by {by}"
    lines = [r.getMessage() for r in caplog.records if r.name == "supervisor.app.holding"]
    assert lines == [held.summary, released.summary]


def _holds(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind is Kind.HOLD]


async def test_a_reload_hands_every_reader_the_new_fleet(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    """After a reload each part that reads the fleet acts on the new target list: HTTP
    (/health, /history, /metrics), the control socket's holds, the state file, the chat's
    commands (/status, /restart) and the supervision pass. A part left on the old fleet would
    answer for `dashboard`, or miss what happens to the new one."""
    names = ("trader", "dashboard", "position-monitor")
    trader, dashboard, monitor = (target(n, NO_RECOVERY) for n in names)
    async with FakeBotApi() as fake:
        alerts = "[alerts]\nfailure_threshold = 1\n" + alerts_toml(fake)
        before = config(tmp_path, trader + dashboard, alerts)
        after = config(tmp_path, trader + monitor, alerts)
        async with running(bus, before, reloaded=after) as run:
            run.reload.set()
            await until(lambda: run.daemon.reloads == 1, 2, "the reload applied")
            base = f"http://127.0.0.1:{run.inside.port}"
            async with aiohttp.ClientSession() as http:
                for path in ("/health/", "/history/"):
                    async with http.get(f"{base}{path}position-monitor") as new:
                        assert new.status == 200, path
                    async with http.get(f"{base}{path}dashboard") as old:
                        assert old.status == 404, path
            sock = tmp_path / CONTROL_FILE
            ask = {"op": "hold", "target": "position-monitor", "for_s": 60, "reason": "after"}
            assert (await asyncio.to_thread(request, sock, ask))["ok"]
            ask["target"] = "dashboard"
            refused = await asyncio.to_thread(request, sock, ask)
            assert "no target named 'dashboard'" in refused["error"]
            assert run.inside.sample("supervisor_target_held", {"target": "position-monitor"}) == 1
            assert run.inside.sample("supervisor_target_held", {"target": "dashboard"}) is None
            await until(
                lambda: (
                    "position-monitor" in run.inside.saved().get("targets", {}).get("holds", {})
                ),
                3,
                "the new fleet's hold in the state file",
            )
            await fake.wait_for_request("getUpdates")
            for n, text in enumerate(
                ("/status", "/restart dashboard", "/restart position-monitor")
            ):
                fake.queue_message(CHAT, text)
                await fake.wait_for_messages(n + 1, 5)
            status, old_target, confirm = texts(fake)
            assert "position-monitor" in status and "dashboard" not in status
            assert "'dashboard' is not a configured target" in old_target
            assert "Press the button" in confirm
            fake.queue_callback(CHAT, "restart:position-monitor", int(fake.sent[2]["message_id"]))
            await fake.wait_for_messages(4, 5)
            assert [c.args for c in systemd.calls_to("RestartUnit")] == [
                ("position-monitor.service", "replace")
            ]
            # The pass judges the new fleet: a failure there opens an incident.
            systemd.set_unit("trader.service", ActiveState="failed", SubState="failed", MainPID=0)
            await until(lambda: "trader:health" in run.inside.incidents, 3, "an incident open")
