"""A death read over D-Bus from the fake systemd: OOM, exit facts, and the alert's wait bound.

The fake answers what real systemd will not produce on demand here (`Result=oom-kill` on a
cgroup v1 host); the front end, the autopsy and the journal reader are the real ones, with a
stand-in `journalctl` executable.
"""

from __future__ import annotations

import time
from pathlib import Path

from supervisor.happenings import Happening
from supervisor.model import UnitState
from supervisor.probing.resources import ProcReader
from supervisor.watch.autopsy import WAIT_S, Autopsies, Death
from supervisor.watch.cause import Kind
from supervisor.watch.lastwords import LastWordsReader, Limits
from supervisor.watch.systemd import Systemd
from tests.bus.conftest import FLEET
from tests.clock import FakeClock
from tests.fakes.dbus_daemon import BusDaemon
from tests.fakes.systemd_bus import FakeSystemd
from tests.fakes.systemd_model import usec
from tests.polling import until

GIB = 1024**3
INVOCATION = bytes(range(16))


class Forward:
    """A systemd.Listener that hands every state to the autopsy, as the daemon does."""

    def __init__(self) -> None:
        self.autopsies: Autopsies | None = None

    def unit_changed(self, state: UnitState) -> None:
        if self.autopsies is not None:
            self.autopsies.unit_changed(state.unit.removesuffix(".service"), state)

    def bus_lost(self, reason: str) -> None:
        pass


def journal(tmp_path: Path, body: str) -> str:
    path = tmp_path / "journalctl"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


async def watch(
    bus: BusDaemon, tmp_path: Path, tool: str, heard: list[Happening], limits: Limits
) -> tuple[Systemd, Autopsies]:
    forward = Forward()
    front = Systemd(bus.address, FLEET, call_timeout_s=2.0)
    autopsies = Autopsies(
        front,
        reader=LastWordsReader(str, journalctl=tool),
        procs=ProcReader(proc=tmp_path, cgroup_root=tmp_path),
        clock=FakeClock(),
        limits=limits,
        emit=heard.append,
    )
    forward.autopsies = autopsies
    await front.connect(forward)
    return front, autopsies


async def test_an_oom_kill_on_the_fake_systemd(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    match = f"_SYSTEMD_INVOCATION_ID={INVOCATION.hex()}"
    said = 'echo "starting"; echo "allocating 512 MiB more"'
    tool = journal(tmp_path, f'case "$*" in *{match}*) {said};; esac')
    heard: list[Happening] = []
    front, autopsies = await watch(bus, tmp_path, tool, heard, Limits())
    autopsies.use(Limits(lines=1))  # as a reload's [causes] log_lines = 1 is handed over
    try:
        autopsies.observe_memory("trader", 1.9 * GIB)
        started = systemd.unit("trader.service")["ExecMainStartTimestamp"]
        systemd.set_unit(
            "trader.service",
            quiet=True,
            InvocationID=INVOCATION,
            MemoryMax=2 * GIB,
            ExecMainExitTimestamp=started + 3_600_000_000 + 120_000_000,
        )
        systemd.set_unit(
            "trader.service", ActiveState="failed", SubState="failed", Result="oom-kill",
            MainPID=0, ExecMainCode=2, ExecMainStatus=9,
        )  # fmt: skip
        death = await _death(autopsies)
        assert death.cause.kind is Kind.OOM
        assert death.cause.words == (
            "killed by the kernel's OOM killer at 1.9 GiB (MemoryMax 2.0 GiB) after 1 h 2 min"
        )
        assert death.facts.invocation == INVOCATION.hex()
        assert death.log.lines == ("allocating 512 MiB more",)
        assert heard == [death.happening()]
    finally:
        front.close()


async def test_the_alert_waits_at_most_half_a_second_for_a_hanging_journal(
    bus: BusDaemon, systemd: FakeSystemd, tmp_path: Path
) -> None:
    tool = journal(tmp_path, "exec sleep 600")
    heard: list[Happening] = []
    # The read's own deadline is longer than the alert's wait: the wait must bound it.
    front, autopsies = await watch(bus, tmp_path, tool, heard, Limits(timeout_s=3.0))
    try:
        systemd.set_unit("trader.service", quiet=True, InvocationID=INVOCATION)
        systemd.set_unit(
            "trader.service", ActiveState="failed", SubState="failed", Result="exit-code",
            MainPID=0, ExecMainCode=1, ExecMainStatus=3, ExecMainExitTimestamp=usec(),
        )  # fmt: skip
        await _reading(autopsies)
        began = time.monotonic()
        assert await autopsies.wait("trader") is None
        took = time.monotonic() - began
        assert WAIT_S - 0.05 <= took < WAIT_S + 0.25, took
        # The read goes on by itself and ends at its own deadline, saying why.
        death = await _death(autopsies, timeout_s=6.0)
        assert death.cause.words.startswith("exited with status 3")
        assert death.log.unavailable == "reading the log took over 3.0 s"
    finally:
        autopsies.close()
        front.close()


async def _reading(autopsies: Autopsies, timeout_s: float = 2.0) -> None:
    await until(lambda: autopsies.reading("trader"), timeout_s, "a death noticed")


async def _death(autopsies: Autopsies, timeout_s: float = 3.0) -> Death:
    death = await until(lambda: autopsies.latest("trader"), timeout_s, "the death read")
    assert death is not None
    return death
