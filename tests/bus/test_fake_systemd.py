"""The fake systemd behaves as systemd 252 does where our code can tell, seen by a raw client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from tests.fakes.dbus_daemon import BusDaemon
from tests.fakes.systemd_bus import FakeSystemd
from tests.fakes.systemd_model import (
    ALREADY_SUBSCRIBED,
    INVALID_ARGS,
    MANAGER,
    MANAGER_PATH,
    NO_SUCH_UNIT,
    NOT_SUBSCRIBED,
    SERVICE,
    SYSTEMD,
    UNIT,
    unit_path,
)

PROPERTIES = "org.freedesktop.DBus.Properties"
DBUS = "org.freedesktop.DBus"


class Client:
    """A bare dbus-fast connection that calls and collects the signals it matched."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.signals: list[Message] = []
        self._got = asyncio.Event()
        bus.add_message_handler(self._on_message)

    def _on_message(self, msg: Message) -> None:
        ours = msg.message_type is MessageType.SIGNAL and msg.sender != DBUS
        if ours or (msg.member == "NameOwnerChanged" and msg.body and msg.body[0] == SYSTEMD):
            self.signals.append(msg)
            self._got.set()

    async def call(
        self,
        member: str,
        signature: str = "",
        *body: Any,
        path: str = MANAGER_PATH,
        interface: str = MANAGER,
        destination: str = SYSTEMD,
    ) -> Message:
        reply = await self.bus.call(
            Message(
                destination=destination,
                path=path,
                interface=interface,
                member=member,
                signature=signature,
                body=list(body),
            )
        )
        assert reply is not None
        return reply

    async def match(self, rule: str) -> None:
        reply = await self.call(
            "AddMatch", "s", rule, path="/org/freedesktop/DBus", interface=DBUS, destination=DBUS
        )
        assert reply.message_type is MessageType.METHOD_RETURN

    async def wait(self, pred: Callable[[list[Message]], bool], timeout_s: float = 2.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not pred(self.signals):
                self._got.clear()
                await self._got.wait()

    def members(self) -> list[str]:
        return [str(m.member) for m in self.signals]


@pytest.fixture
async def client(bus: BusDaemon) -> AsyncIterator[Client]:
    connection = await MessageBus(bus_address=bus.address).connect()
    peer = Client(connection)
    await peer.match(f"type='signal',sender='{SYSTEMD}'")
    yield peer
    connection.disconnect()
    await connection.wait_for_disconnect()  # type: ignore[no-untyped-call]


def error_of(reply: Message) -> tuple[str | None, str]:
    assert reply.message_type is MessageType.ERROR
    return reply.error_name, str(reply.body[0])


def test_unit_paths_are_escaped_as_systemd_does() -> None:
    assert unit_path("trader.service") == "/org/freedesktop/systemd1/unit/trader_2eservice"
    assert unit_path("position-monitor.service").endswith("/position_2dmonitor_2eservice")
    assert unit_path("0day@x.service").endswith("/_30day_40x_2eservice")
    assert unit_path("") == "/org/freedesktop/systemd1/unit/_"


async def test_no_signals_until_subscribed_and_none_after_unsubscribing(
    systemd: FakeSystemd, client: Client
) -> None:
    systemd.set_unit("trader.service", SubState="exited")  # nobody subscribed: no signal
    assert (await client.call("Subscribe")).message_type is MessageType.METHOD_RETURN
    assert systemd.subscribers == {client.bus.unique_name}
    systemd.set_unit("trader.service", SubState="running")
    await client.wait(lambda s: len(s) == 2)
    service, unit = client.signals
    # The Service interface first, then Unit, each with every property that emits changes.
    assert [m.body[0] for m in (service, unit)] == [SERVICE, UNIT]
    assert unit.path == unit_path("trader.service")
    assert unit.body[1]["SubState"].value == "running"
    assert set(unit.body[1]) == {
        "LoadState",
        "ActiveState",
        "SubState",
        "StateChangeTimestamp",
        "ActiveEnterTimestamp",
        "InactiveEnterTimestamp",
    }
    assert "MemoryCurrent" not in service.body[1]  # polled, never signalled
    assert error_of(await client.call("Subscribe")) == (
        ALREADY_SUBSCRIBED,
        "Client is already subscribed.",
    )
    await client.call("Unsubscribe")
    assert error_of(await client.call("Unsubscribe"))[0] == NOT_SUBSCRIBED
    assert systemd.subscribers == set()


async def test_a_subscriber_that_leaves_the_bus_is_unsubscribed(
    bus: BusDaemon, systemd: FakeSystemd
) -> None:
    connection = await MessageBus(bus_address=bus.address).connect()
    await Client(connection).call("Subscribe")
    await systemd.wait_call("Subscribe")
    assert systemd.subscribers == {connection.unique_name}
    connection.disconnect()
    await connection.wait_for_disconnect()  # type: ignore[no-untyped-call]
    await systemd.flush()  # NameOwnerChanged has reached the fake
    assert systemd.subscribers == set()


async def test_units_that_do_not_exist(systemd: FakeSystemd, client: Client) -> None:
    assert error_of(await client.call("GetUnit", "s", "ghost.service")) == (
        NO_SUCH_UNIT,
        "Unit ghost.service not loaded.",
    )
    path = (await client.call("LoadUnit", "s", "ghost.service")).body[0]
    assert path == unit_path("ghost.service")
    assert (await client.call("GetUnit", "s", "ghost.service")).body[0] == path
    props = (await client.call("GetAll", "s", UNIT, path=path, interface=PROPERTIES)).body[0]
    assert (props["LoadState"].value, props["ActiveState"].value) == ("not-found", "inactive")
    assert tuple(props["LoadError"].value) == (NO_SUCH_UNIT, "Unit ghost.service not found.")
    assert error_of(await client.call("RestartUnit", "ss", "ghost.service", "replace")) == (
        NO_SUCH_UNIT,
        "Unit ghost.service not found.",
    )
    assert error_of(await client.call("RestartUnit", "ss", "trader.service", "now"))[0] == (
        INVALID_ARGS
    )


async def test_a_requester_hears_of_its_own_job_without_subscribing(
    systemd: FakeSystemd, client: Client
) -> None:
    reply = await client.call("RestartUnit", "ss", "trader.service", "replace")
    job = systemd.jobs[0]
    assert reply.body == [job.path] == ["/org/freedesktop/systemd1/job/1"]
    # Not subscribed: the requester still hears about its own job, and nothing else.
    await client.wait(lambda s: "JobRemoved" in [m.member for m in s])
    assert client.members() == ["JobNew", "JobRemoved"]
    assert client.signals[-1].body == [1, job.path, "trader.service", "done"]
    assert systemd.unit("trader.service")["ActiveState"] == "active"


async def test_faults_are_used_up(systemd: FakeSystemd, client: Client) -> None:
    systemd.fail("LoadUnit", "org.freedesktop.DBus.Error.NoMemory", "out of memory", times=2)
    for _ in range(2):
        reply = await client.call("LoadUnit", "s", "trader.service")
        assert error_of(reply) == ("org.freedesktop.DBus.Error.NoMemory", "out of memory")
    assert (await client.call("LoadUnit", "s", "trader.service")).body == [
        unit_path("trader.service")
    ]
    systemd.hang("GetUnit")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.call("GetUnit", "s", "trader.service")
    assert [c.member for c in systemd.calls].count("GetUnit") == 1
    assert (await client.call("GetUnit", "s", "trader.service")).body == [
        unit_path("trader.service")
    ]


async def test_a_reexec_hands_the_name_to_a_new_connection(
    systemd: FakeSystemd, client: Client
) -> None:
    await client.match(f"type='signal',sender='{DBUS}',member='NameOwnerChanged',arg0='{SYSTEMD}'")
    await client.call("Subscribe")
    old = systemd.unique_name
    new = await systemd.reexec()
    await client.wait(lambda s: [m.member for m in s][-1:] == ["Reloading"] and len(s) >= 4)
    assert [(m.member, m.sender, m.body) for m in client.signals] == [
        ("Reloading", old, [True]),
        ("NameOwnerChanged", DBUS, [SYSTEMD, old, ""]),
        ("NameOwnerChanged", DBUS, [SYSTEMD, "", new]),
        ("Reloading", new, [False]),
    ]
    # The new manager answers, and remembers who had subscribed (systemd serializes that).
    assert error_of(await client.call("Subscribe"))[0] == ALREADY_SUBSCRIBED
    systemd.set_unit("trader.service", SubState="exited")
    await client.wait(lambda s: s[-1].member == "PropertiesChanged")
    assert {m.sender for m in client.signals[4:]} == {new}
