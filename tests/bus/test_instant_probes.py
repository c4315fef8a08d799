"""Heartbeat probes through the whole daemon on a fake systemd: run from the one timetable,
a stale file fails its target after the confirm re-probes, a fresh one passes it again, and
every target keeps being probed beside it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from supervisor.model import Status
from tests.bus.test_daemon import Running, config, running, target
from tests.fakes.dbus_daemon import BusDaemon
from tests.fakes.systemd_bus import FakeSystemd
from tests.polling import until


def beat(path: Path, age_s: float = 0.0) -> None:
    path.touch()
    then = time.time() - age_s
    os.utime(path, (then, then))


def probed(run: Running, name: str) -> float:
    """How many heartbeat probes `name` has had (the daemon's own registry)."""
    found = run.inside.sample("supervisor_probe_runs_total", {"target": name, "type": "heartbeat"})
    return found or 0.0


def heartbeat(path: Path) -> str:
    return (
        f'[[targets.probes]]\ntype = "heartbeat"\npath = "{path}"\nmax_age_s = 30\n'
        "period_s = 0.2\nconfirm_interval_s = 0.05\n"
        "[targets.recovery]\nenabled = false\n"
    )


async def test_a_stale_heartbeat_fails_its_target_and_a_fresh_one_passes_it_again(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    trader, monitor = tmp_path / "trader.beat", tmp_path / "monitor.beat"
    beat(trader)
    beat(monitor)
    targets = target("trader", heartbeat(trader)) + target("position-monitor", heartbeat(monitor))
    async with running(bus, config(tmp_path, targets)) as run:
        await until(lambda: run.status("trader") is Status.PASS, 5, "trader pass")
        beat(trader, age_s=60)
        await until(lambda: run.status("trader") is Status.FAIL, 5, "trader fail")
        output = run.daemon.snapshot().target("trader").output  # type: ignore[union-attr]
        assert "heartbeat: 60 s old (max 30 s)" in output
        assert run.status("position-monitor") is Status.PASS
        runs = probed(run, "position-monitor")
        await until(
            lambda: probed(run, "position-monitor") >= runs + 3, 5, "the other probed beside it"
        )
        beat(trader)
        await until(lambda: run.status("trader") is Status.PASS, 5, "trader pass again")
