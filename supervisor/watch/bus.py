"""One D-Bus connection, as the systemd front end uses it (dbus-fast, low-level messages).

What crosses out of here is plain: a call's reply as a list, properties as plain values,
signals as `Signal` records, and every failure as one of our errors: `BusError` (no bus, no
answer in time, the library gave up), `BusReplyError` (systemd answered with an error) and
`AlreadySubscribedError` (its one error we expect). Every call has the same deadline. What
the calls and signals mean is `systemd.py`'s business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from supervisor.errors import AlreadySubscribedError, BusError, BusReplyError

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
ALREADY_SUBSCRIBED = "org.freedesktop.systemd1.AlreadySubscribed"
UNIT = "org.freedesktop.systemd1.Unit"
SERVICE = "org.freedesktop.systemd1.Service"
JOB = "org.freedesktop.systemd1.Job"
PROPERTIES = "org.freedesktop.DBus.Properties"
BUS_DAEMON = "org.freedesktop.DBus"
UNIT_PATHS = "/org/freedesktop/systemd1/unit"


@dataclass(frozen=True, slots=True)
class Signal:
    """A signal as it came: its sender's unique name, its name, its object path, its body."""

    sender: str
    member: str
    path: str
    body: list[Any]


class Bus:
    """A session-bus connection that can be dropped and made again."""

    def __init__(self, address: str, call_timeout_s: float) -> None:
        self._address = address
        self._timeout = call_timeout_s
        self._bus: MessageBus | None = None

    @property
    def connected(self) -> bool:
        """True while the connection is up."""
        return self._bus is not None and self._bus.connected

    async def connect(self, on_signal: Callable[[Signal], None]) -> None:
        """Connect; every signal the bus routes to us goes to `on_signal` (from its reader)."""
        try:
            bus = await asyncio.wait_for(
                MessageBus(bus_address=self._address, bus_type=BusType.SESSION).connect(),
                self._timeout,
            )
        except Exception as exc:  # OSError, TimeoutError, auth failures: all mean no bus
            raise BusError(
                f"cannot connect to {self._address}: {exc or type(exc).__name__}"
            ) from None

        def hear(msg: Message) -> None:
            if msg.message_type is MessageType.SIGNAL:
                on_signal(Signal(msg.sender or "", msg.member or "", msg.path or "", msg.body))

        bus.add_message_handler(hear)
        self._bus = bus

    async def add_match(self, rule: str) -> None:
        """Have the bus route us the signals `rule` matches."""
        await self._call(_daemon("AddMatch", "s", rule))

    async def name_owner(self, name: str) -> str:
        """The unique name that owns `name` now."""
        return str((await self._call(_daemon("GetNameOwner", "s", name)))[0])

    async def manager(self, member: str, sig: str, *body: Any) -> list[Any]:
        """Call one of systemd's Manager methods."""
        return await self._call(_message(SYSTEMD, MANAGER_PATH, MANAGER, member, sig, *body))

    async def get_all(self, path: str, interface: str) -> dict[str, Any]:
        """Every property of one of an object's interfaces, as plain values."""
        reply = await self._call(_message(SYSTEMD, path, PROPERTIES, "GetAll", "s", interface))
        return {name: variant.value for name, variant in reply[0].items()}

    async def get(self, path: str, interface: str, names: Iterable[str]) -> dict[str, Any]:
        """A few properties, one call each, as plain values."""
        out: dict[str, Any] = {}
        for name in names:
            reply = await self._call(
                _message(SYSTEMD, path, PROPERTIES, "Get", "ss", interface, name)
            )
            out[name] = reply[0].value
        return out

    async def _call(self, msg: Message) -> list[Any]:
        bus = self._bus
        member = msg.member
        if bus is None or not bus.connected:
            raise BusError("not connected to the bus")
        try:
            async with asyncio.timeout(self._timeout):
                reply = await bus.call(msg)
        except TimeoutError:
            raise BusError(f"{member} timed out after {self._timeout:.1f} s") from None
        except Exception as exc:  # the library raises assorted errors once the bus is gone
            raise BusError(f"{member} failed: {exc or type(exc).__name__}") from None
        if reply is None:
            raise BusError(f"{member}: no reply")
        if reply.message_type is MessageType.ERROR:
            detail = str(reply.body[0]) if reply.body else ""
            name = str(reply.error_name)
            error = AlreadySubscribedError if name == ALREADY_SUBSCRIBED else BusReplyError
            raise error(str(member), name, detail)
        return list(reply.body)

    async def wait_closed(self) -> str:
        """Wait until the connection ends; return why, in words."""
        bus = self._bus
        if bus is None:
            return "not connected"
        try:
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
        except Exception as exc:  # the disconnect future carries the transport's error
            return f"bus connection lost: {exc or type(exc).__name__}"
        return "bus connection closed"

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        bus, self._bus = self._bus, None
        if bus is not None and bus.connected:
            bus.disconnect()


def _message(dest: str, path: str, iface: str, member: str, sig: str, *body: Any) -> Message:
    return Message(
        destination=dest, path=path, interface=iface, member=member, signature=sig, body=list(body)
    )


def _daemon(member: str, sig: str, *body: Any) -> Message:
    return _message(BUS_DAEMON, "/org/freedesktop/DBus", BUS_DAEMON, member, sig, *body)
