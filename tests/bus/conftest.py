"""Fixtures for fast tests on a private bus: a dbus-daemon per test and a fake systemd on it.

No user manager is needed, so these run everywhere dbus-daemon is installed, in
milliseconds; the real sandbox (tests/integration) stays for end-to-end tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from supervisor.model import UnitState
from supervisor.watch.systemd import Systemd
from tests.fakes.dbus_daemon import BusDaemon, BusUnavailableError
from tests.fakes.systemd_bus import FakeSystemd

# The project's default targets: the fake starts with these three units active.
FLEET = ("trader.service", "dashboard.service", "position-monitor.service")


@pytest.fixture
def bus() -> Iterator[BusDaemon]:
    """A private session bus for this test only."""
    daemon = BusDaemon()
    try:
        daemon.start()
    except BusUnavailableError as exc:
        pytest.skip(str(exc))
    yield daemon
    daemon.close()


@pytest.fixture
async def systemd(bus: BusDaemon) -> AsyncIterator[FakeSystemd]:
    """A fake systemd user manager owning org.freedesktop.systemd1, with the demo fleet."""
    fake = FakeSystemd(bus.address)
    for unit in FLEET:
        fake.add_unit(unit)
    await fake.start()
    yield fake
    await fake.close()


class Heard:
    """A `systemd.Listener` that keeps every state it is told and wakes whoever waits."""

    def __init__(self) -> None:
        self.states: list[UnitState] = []
        self.lost: list[str] = []
        self._changed = asyncio.Event()

    def unit_changed(self, state: UnitState) -> None:
        self.states.append(state)
        self._changed.set()

    def bus_lost(self, reason: str) -> None:
        self.lost.append(reason)
        self._changed.set()

    def of(self, unit: str) -> list[UnitState]:
        """Every state heard for one unit, in order."""
        return [s for s in self.states if s.unit == unit]

    async def until(
        self, unit: str, pred: Callable[[UnitState], bool], timeout_s: float = 2.0
    ) -> UnitState:
        """Wait until the latest state heard for `unit` satisfies `pred`; return it."""
        async with asyncio.timeout(timeout_s):
            while True:
                heard = self.of(unit)
                if heard and pred(heard[-1]):
                    return heard[-1]
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def heard() -> Heard:
    """What the front end told its listener."""
    return Heard()


@pytest.fixture
async def watching(bus: BusDaemon, systemd: FakeSystemd, heard: Heard) -> AsyncIterator[Systemd]:
    """Our D-Bus front end, connected to the fake and watching the fleet."""
    front = Systemd(bus.address, FLEET, call_timeout_s=2.0)
    await front.connect(heard)
    yield front
    front.close()
