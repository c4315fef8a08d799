"""The fake systemd's objects on the bus, as dbus-fast `ServiceInterface`s: the Manager (every
method hands over to the `FakeSystemd`), and per unit the Unit interface (and Service, for a
.service), whose properties are read from the unit's model.

This module does not use `from __future__ import annotations`: dbus-fast reads the D-Bus
signatures from the annotations, and turns a string "None" return into an invalid signature.
"""

import contextlib
from typing import TYPE_CHECKING, Annotated, Any, Self

from dbus_fast import Message, NameFlag, PropertyAccess, RequestNameReply
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusObjectPath, DBusSignature, DBusStr
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal

from tests.fakes.systemd_model import (
    DBUS,
    MANAGER,
    MANAGER_PATH,
    NO_SUCH_UNIT,
    SERVICE,
    SERVICE_PROPERTIES,
    SYSTEMD,
    UNIT,
    UNIT_PROPERTIES,
    FakeUnit,
)

if TYPE_CHECKING:
    from tests.fakes.systemd_bus import FakeSystemd


class _Properties(ServiceInterface):
    """One interface of a unit object; its properties are read from the unit's model."""

    interface_name = ""

    def __init__(self, unit: FakeUnit) -> None:
        super().__init__(self.interface_name)
        self.unit = unit


def _property(name: str, signature: str) -> Any:
    def get(self: _Properties) -> Any:
        return self.unit.props[name]

    get.__name__ = name
    get.__annotations__ = {"return": signature}
    return dbus_property(access=PropertyAccess.READ, name=name)(get)


def _interface(
    cls_name: str, interface: str, table: dict[str, tuple[str, bool]]
) -> type[_Properties]:
    namespace: dict[str, Any] = {name: _property(name, sig) for name, (sig, _) in table.items()}
    namespace["interface_name"] = interface
    return type(cls_name, (_Properties,), namespace)


_UnitInterface = _interface("_UnitInterface", UNIT, UNIT_PROPERTIES)
_ServiceInterface = _interface("_ServiceInterface", SERVICE, SERVICE_PROPERTIES)


class _Manager(ServiceInterface):
    """org.freedesktop.systemd1.Manager: every method hands over to the FakeSystemd."""

    def __init__(self, fake: "FakeSystemd") -> None:
        super().__init__(MANAGER)
        self._fake = fake

    @dbus_method(name="Subscribe")
    def subscribe(self) -> None:
        self._fake._subscribe()

    @dbus_method(name="Unsubscribe")
    def unsubscribe(self) -> None:
        self._fake._unsubscribe()

    @dbus_method(name="LoadUnit")
    def load_unit(self, name: DBusStr) -> DBusObjectPath:
        return self._fake._load(name).path

    @dbus_method(name="GetUnit")
    def get_unit(self, name: DBusStr) -> DBusObjectPath:
        unit = self._fake.units.get(name)
        if unit is None:
            raise DBusError(NO_SUCH_UNIT, f"Unit {name} not loaded.")
        return unit.path

    @dbus_method(name="StartUnit")
    def start_unit(self, name: DBusStr, mode: DBusStr) -> DBusObjectPath:
        return self._fake._enqueue("start", name, mode)

    @dbus_method(name="StopUnit")
    def stop_unit(self, name: DBusStr, mode: DBusStr) -> DBusObjectPath:
        return self._fake._enqueue("stop", name, mode)

    @dbus_method(name="RestartUnit")
    def restart_unit(self, name: DBusStr, mode: DBusStr) -> DBusObjectPath:
        return self._fake._enqueue("restart", name, mode)

    @dbus_method(name="ResetFailedUnit")
    def reset_failed_unit(self, name: DBusStr) -> None:
        self._fake._reset_failed(name)

    @dbus_method(name="Reload")
    def reload(self) -> None:
        self._fake._reloading(True)
        self._fake._reloading(False)

    @dbus_signal(name="UnitNew")
    def unit_new(self, unit: str, path: str) -> Annotated[tuple[str, str], DBusSignature("so")]:
        return unit, path

    @dbus_signal(name="UnitRemoved")
    def unit_removed(self, unit: str, path: str) -> Annotated[tuple[str, str], DBusSignature("so")]:
        return unit, path

    @dbus_signal(name="JobNew")
    def job_new(
        self, job_id: int, path: str, unit: str
    ) -> Annotated[tuple[int, str, str], DBusSignature("uos")]:
        return job_id, path, unit

    @dbus_signal(name="JobRemoved")
    def job_removed(
        self, job_id: int, path: str, unit: str, result: str
    ) -> Annotated[tuple[int, str, str, str], DBusSignature("uoss")]:
        return job_id, path, unit, result

    @dbus_signal(name="Reloading")
    def reloading(self, active: bool) -> DBusBool:
        return active


class Connection:
    """One connection to the bus and the objects exported on it (one per "process")."""

    def __init__(self, fake: "FakeSystemd", bus: MessageBus) -> None:
        self.bus = bus
        self.manager = _Manager(fake)
        bus.export(MANAGER_PATH, self.manager)
        self.objects: dict[str, list[_Properties]] = {}

    def export(self, unit: FakeUnit) -> None:
        # Service before Unit: the order in which systemd sends their PropertiesChanged.
        interfaces = [_ServiceInterface(unit)] if unit.is_service else []
        interfaces.append(_UnitInterface(unit))
        for interface in interfaces:
            self.bus.export(unit.path, interface)
        self.objects[unit.name] = interfaces

    @classmethod
    async def open(cls, fake: "FakeSystemd", *, take_name: bool) -> Self:
        """Connect to the fake's bus, export the manager and every unit, and take the name
        org.freedesktop.systemd1 (with take_name=False, stay under a unique name only)."""
        bus = await MessageBus(bus_address=fake.address).connect()
        try:
            bus.add_message_handler(fake._on_message)
            # Hear clients leave, so their subscriptions end as systemd's bus tracking ends them.
            rule = f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged'"
            await bus.call(
                Message(
                    destination=DBUS,
                    path="/org/freedesktop/DBus",
                    interface=DBUS,
                    member="AddMatch",
                    signature="s",
                    body=[rule],
                )
            )
            conn = cls(fake, bus)
            for unit in fake.units.values():
                conn.export(unit)
            reply = RequestNameReply.PRIMARY_OWNER
            if take_name:
                reply = await bus.request_name(SYSTEMD, NameFlag.DO_NOT_QUEUE)
            if reply is not RequestNameReply.PRIMARY_OWNER:
                raise RuntimeError(f"could not own {SYSTEMD} on {fake.address}: {reply.name}")
        except BaseException:
            bus.disconnect()
            raise
        return conn

    async def close(self) -> None:
        bus = self.bus
        if bus.connected:
            bus.disconnect()
        with contextlib.suppress(Exception):  # the disconnect future carries any socket error
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]

    def send_changed(self, unit: FakeUnit) -> None:
        """PropertiesChanged for each of the unit's interfaces, as systemd sends them: every
        property that emits changes (not just the ones that changed), the invalidated by name."""
        for interface in self.objects.get(unit.name, []):
            table = SERVICE_PROPERTIES if interface.name == SERVICE else UNIT_PROPERTIES
            values = {
                k: unit.props[k]
                for k, (_, emits) in table.items()
                if emits and k not in unit.invalidated
            }
            gone = [k for k in table if k in unit.invalidated]
            interface.emit_properties_changed(values, gone)
