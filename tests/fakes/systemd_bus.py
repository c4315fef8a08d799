"""A fake systemd user manager on a private bus, built from dbus-fast `ServiceInterface`s.

`FakeSystemd(address)` connects to a bus (see `tests.fakes.dbus_daemon.BusDaemon`), takes the
well-known name `org.freedesktop.systemd1` and serves, as systemd 252 does:

* `org.freedesktop.systemd1.Manager` on `/org/freedesktop/systemd1`: Subscribe, Unsubscribe
  (`AlreadySubscribed`/`NotSubscribed` errors included), LoadUnit (an unknown name gives a
  unit whose LoadState is `not-found`), GetUnit (`NoSuchUnit` unless loaded), StartUnit,
  StopUnit, RestartUnit (job mode checked; `NoSuchUnit` for a unit that is not found,
  `UnitMasked` for a masked one), ResetFailedUnit, Reload; the signals UnitNew, UnitRemoved,
  JobNew, JobRemoved and Reloading.
* a unit object per unit at systemd's escaped path (`.../unit/trader_2eservice`) with the
  `org.freedesktop.systemd1.Unit` interface (and `...Service` for `.service` units), read
  through the real `org.freedesktop.DBus.Properties` Get/GetAll. A change sends
  `PropertiesChanged` the way systemd does: the Service interface first, then Unit, each
  carrying every property that emits changes (not just the ones that changed).
  `MemoryCurrent`, `CPUUsageNSec` and `ControlGroup` emit nothing: callers must poll.
* unit signals and Reloading only while some client is subscribed (a client that leaves the
  bus is unsubscribed); job signals also go out for the job's own requester.
* jobs: the method replies with the job path, then the job runs in the background and
  walks the unit through its states (a restart: deactivating, inactive, activating, then
  active with a new MainPID, or failed), and ends with JobRemoved carrying the unit's
  `job_result` ("done", "failed", "timeout", ...).

What a test can do to it: read `calls` (every method call received, Properties included) and
wait on them (`wait_call`, or the per-member `asyncio.Event`s in `called`); make the next
call(s) of a member fail with any D-Bus error (`fail`) or never be answered (`hang`); hold
jobs before they finish (`hold_jobs`/`release_jobs`); finish jobs before the reply leaves
(`jobs_finish_before_reply`); change units with or without signals (`set_unit`); emit any
signal on demand (`emit_*`); and re-execute (`reexec`): the connection that owns the name
leaves the bus and a new connection, with a new unique name, takes the name over, as after
`systemctl --user daemon-reexec`. Subscriptions survive a re-exec, as systemd serializes them.

What it does not fake: the Job objects at job paths, unit files and dependencies, queued
jobs merging (every call makes a new job), the start rate limit, properties other than those
in the tables below, PolicyKit, the private socket `systemctl` uses, and the time a real
unit takes: jobs finish as soon as the event loop lets them. MainPID is a made-up number,
never a real process.

This module does not use `from __future__ import annotations`: dbus-fast reads the D-Bus
signatures from the annotations, and turns a string "None" return into an invalid signature.
"""

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from dbus_fast import Message, MessageType, NameFlag, PropertyAccess, RequestNameReply
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusObjectPath, DBusSignature, DBusStr
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal

SYSTEMD = "org.freedesktop.systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
MANAGER_PATH = "/org/freedesktop/systemd1"
UNIT = "org.freedesktop.systemd1.Unit"
SERVICE = "org.freedesktop.systemd1.Service"
UNIT_PATHS = "/org/freedesktop/systemd1/unit"
JOB_PATHS = "/org/freedesktop/systemd1/job"
DBUS = "org.freedesktop.DBus"
UNSET_U64 = 2**64 - 1  # systemd's "not set" for MemoryCurrent and CPUUsageNSec

# systemd's error names (src/libsystemd/sd-bus/bus-common-errors.h).
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
UNIT_MASKED = "org.freedesktop.systemd1.UnitMasked"
ALREADY_SUBSCRIBED = "org.freedesktop.systemd1.AlreadySubscribed"
NOT_SUBSCRIBED = "org.freedesktop.systemd1.NotSubscribed"
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"

JOB_MODES = frozenset(
    {
        "replace",
        "fail",
        "isolate",
        "ignore-dependencies",
        "ignore-requirements",
        "flush",
        "triggering",
        "restart-dependencies",
    }
)

# Property name -> (D-Bus signature, emits PropertiesChanged with its value).
UNIT_PROPERTIES: dict[str, tuple[str, bool]] = {
    "Id": ("s", False),
    "Description": ("s", False),
    "LoadState": ("s", True),
    "ActiveState": ("s", True),
    "SubState": ("s", True),
    "LoadError": ("(ss)", False),
    "FragmentPath": ("s", False),
    "StateChangeTimestamp": ("t", True),
    "ActiveEnterTimestamp": ("t", True),
    "InactiveEnterTimestamp": ("t", True),
}
SERVICE_PROPERTIES: dict[str, tuple[str, bool]] = {
    "Type": ("s", False),
    "Restart": ("s", False),
    "Result": ("s", True),
    "MainPID": ("u", True),
    "ControlPID": ("u", True),
    "ExecMainPID": ("u", True),
    "ExecMainCode": ("i", True),
    "ExecMainStatus": ("i", True),
    "NRestarts": ("u", True),
    "StatusText": ("s", True),
    "MemoryCurrent": ("t", False),
    "CPUUsageNSec": ("t", False),
    "ControlGroup": ("s", False),
}
_RUNNING = frozenset({"active", "reloading", "activating", "deactivating", "refreshing"})


def unit_path(unit: str) -> str:
    """systemd's object path for a unit: bytes other than [A-Za-z0-9] (and a leading digit)
    written as _xx, so trader.service is .../unit/trader_2eservice."""
    label = "".join(
        chr(b)
        if chr(b).isascii() and (chr(b).isalpha() or (chr(b).isdigit() and i > 0))
        else f"_{b:02x}"
        for i, b in enumerate(unit.encode())
    )
    return f"{UNIT_PATHS}/{label or '_'}"


def _usec() -> int:
    return int(time.time() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Call:
    """One method call as it reached the fake."""

    member: str
    interface: str
    path: str
    args: tuple[Any, ...]
    sender: str


@dataclass(slots=True)
class FakeJob:
    """A job the fake made; `finished` is set after its JobRemoved went out."""

    id: int
    kind: str  # start | stop | restart
    unit: str
    requester: str
    result: str = ""  # what its JobRemoved says (decided when the job is made)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def path(self) -> str:
        """The job's object path, as systemd names it."""
        return f"{JOB_PATHS}/{self.id}"


class FakeUnit:
    """One unit's properties (both interfaces) and how its next jobs end."""

    def __init__(self, name: str, props: dict[str, Any]) -> None:
        self.name = name
        self.path = unit_path(name)
        self.props = props
        self.job_result = "done"  # what JobRemoved says for this unit's jobs
        self.invalidated: set[str] = set()  # sent by name only in PropertiesChanged

    @property
    def is_service(self) -> bool:
        """True for a .service unit (its object also has the Service interface)."""
        return self.name.endswith(".service")

    def __getitem__(self, name: str) -> Any:
        return self.props[name]


@dataclass(slots=True)
class _Fault:
    error: str | None  # a D-Bus error name, or None: never answer
    text: str
    times: int | None  # None: until clear_faults()


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


class _Connection:
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

    async def close(self) -> None:
        bus = self.bus
        if bus.connected:
            bus.disconnect()
        with contextlib.suppress(Exception):  # the disconnect future carries any socket error
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


class FakeSystemd:
    """A fake systemd user manager on the bus at `address` (start() before use)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.units: dict[str, FakeUnit] = {}
        self.calls: list[Call] = []
        self.called: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.jobs: list[FakeJob] = []
        self.subscribers: set[str] = set()
        self.jobs_finish_before_reply = False
        self._faults: dict[str, deque[_Fault]] = {}
        self._conn: _Connection | None = None
        self._held: asyncio.Event | None = None
        self._job_made = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pids = itertools.count(4001)
        self._job_ids = itertools.count(1)
        self._sender = ""  # the sender of the call being dispatched (set by _on_message)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, take_name: bool = True) -> None:
        """Connect and take the name org.freedesktop.systemd1 (or, with take_name=False, stay
        on the bus under a unique name only: an impostor sending systemd's signals)."""
        self._conn = await self._connect(take_name)

    async def close(self) -> None:
        """Cancel running jobs and leave the bus (idempotent)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def reexec(self) -> str:
        """As `systemctl daemon-reexec`: Reloading(true), this connection leaves the bus (the
        name goes with it), a new connection takes the name, Reloading(false). Units, jobs and
        subscriptions carry over. Returns the new unique name."""
        old = self._require()
        self._reloading(True)
        self._conn = None
        await old.close()
        self._conn = await self._connect()
        self._reloading(False)
        return self.unique_name

    @property
    def unique_name(self) -> str:
        """The unique bus name of the connection that now owns org.freedesktop.systemd1."""
        name = self._require().bus.unique_name
        assert name is not None
        return name

    async def _connect(self, take_name: bool = True) -> _Connection:
        bus = await MessageBus(bus_address=self.address).connect()
        try:
            bus.add_message_handler(self._on_message)
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
            conn = _Connection(self, bus)
            for unit in self.units.values():
                conn.export(unit)
            reply = RequestNameReply.PRIMARY_OWNER
            if take_name:
                reply = await bus.request_name(SYSTEMD, NameFlag.DO_NOT_QUEUE)
            if reply is not RequestNameReply.PRIMARY_OWNER:
                raise RuntimeError(f"could not own {SYSTEMD} on {self.address}: {reply.name}")
        except BaseException:
            bus.disconnect()
            raise
        return conn

    def _require(self) -> _Connection:
        if self._conn is None:
            raise RuntimeError("the fake systemd is not on the bus (start() it)")
        return self._conn

    # -- units -------------------------------------------------------------------------------

    def add_unit(
        self,
        name: str,
        *,
        active: str = "active",
        sub: str | None = None,
        load: str = "loaded",
        **props: Any,
    ) -> FakeUnit:
        """Define a unit (before or after start); other properties by their D-Bus names."""
        if name in self.units:
            raise ValueError(f"{name} already exists")
        _check_names(props)
        now = _usec()
        running = active in _RUNNING
        pid = next(self._pids) if running else 0
        values: dict[str, Any] = {
            "Id": name,
            "Description": f"fake {name}",
            "LoadState": load,
            "ActiveState": active,
            "SubState": sub or _default_sub(active),
            "LoadError": ("", "")
            if load != "not-found"
            else (NO_SUCH_UNIT, f"Unit {name} not found."),
            "FragmentPath": "" if load == "not-found" else f"/fake/units/{name}",
            "StateChangeTimestamp": now,
            "ActiveEnterTimestamp": now if running else 0,
            "InactiveEnterTimestamp": 0 if running else now,
        }
        if name.endswith(".service"):
            values |= {
                "Type": "simple",
                "Restart": "no",
                "Result": "success",
                "MainPID": pid,
                "ControlPID": 0,
                "ExecMainPID": pid,
                "ExecMainCode": 0,
                "ExecMainStatus": 0,
                "NRestarts": 0,
                "StatusText": "",
                "MemoryCurrent": UNSET_U64,
                "CPUUsageNSec": UNSET_U64,
                "ControlGroup": "" if load == "not-found" else f"/user.slice/app.slice/{name}",
            }
        unit = FakeUnit(name, values | props)
        self.units[name] = unit
        if self._conn is not None:
            self._conn.export(unit)
            if self.subscribers:
                self._conn.manager.unit_new(name, unit.path)
        return unit

    def unit(self, name: str) -> FakeUnit:
        """A unit by name (KeyError if it was never defined or loaded)."""
        return self.units[name]

    def set_unit(self, name: str, *, quiet: bool = False, **props: Any) -> None:
        """Change a unit as systemd would, and say so in PropertiesChanged (unless `quiet`:
        a change nobody signalled, found only by reading again)."""
        _check_names(props)
        unit = self.units[name]
        before = dict(unit.props)
        state = props.get("ActiveState", before["ActiveState"])
        if state != before["ActiveState"]:
            now = _usec()
            props.setdefault("StateChangeTimestamp", now)
            if state == "active":
                props.setdefault("ActiveEnterTimestamp", now)
            elif state in ("inactive", "failed"):
                props.setdefault("InactiveEnterTimestamp", now)
        unit.props.update(props)
        changed = {k for k in props if before.get(k) != unit.props[k]}
        if not quiet and any(_emits(k) for k in changed) and self.subscribers:
            self._send_changed(unit)

    def _send_changed(self, unit: FakeUnit) -> None:
        conn = self._conn
        if conn is None:
            return  # between two connections (re-exec): nobody can send
        for interface in conn.objects.get(unit.name, []):
            table = SERVICE_PROPERTIES if interface.name == SERVICE else UNIT_PROPERTIES
            values = {
                k: unit.props[k]
                for k, (_, emits) in table.items()
                if emits and k not in unit.invalidated
            }
            gone = [k for k in table if k in unit.invalidated]
            interface.emit_properties_changed(values, gone)

    def _load(self, name: str) -> FakeUnit:
        unit = self.units.get(name)
        if unit is None:  # LoadUnit of a unit with no file: an object saying "not-found"
            unit = self.add_unit(name, active="inactive", load="not-found")
        return unit

    # -- faults ------------------------------------------------------------------------------

    def fail(self, member: str, error: str, text: str = "", *, times: int | None = 1) -> None:
        """The next `times` calls of `member` (None: all, until clear_faults) get this error."""
        self._faults.setdefault(member, deque()).append(_Fault(error, text or error, times))

    def hang(self, member: str, *, times: int | None = 1) -> None:
        """The next `times` calls of `member` are never answered (the caller times out)."""
        self._faults.setdefault(member, deque()).append(_Fault(None, "", times))

    def clear_faults(self) -> None:
        """Answer every call normally again."""
        self._faults.clear()

    def _take_fault(self, member: str) -> _Fault | None:
        queue = self._faults.get(member)
        if not queue:
            return None
        fault = queue[0]
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
        return fault

    # -- calls -------------------------------------------------------------------------------

    def calls_to(self, member: str) -> list[Call]:
        """The calls of one member so far, in order."""
        return [c for c in self.calls if c.member == member]

    async def wait_call(self, member: str, count: int = 1, timeout_s: float = 5.0) -> Call:
        """Wait until `member` has been called `count` times; return that call."""
        async with asyncio.timeout(timeout_s):
            while len(self.calls_to(member)) < count:
                event = self.called[member]
                event.clear()
                await event.wait()
        return self.calls_to(member)[count - 1]

    def _on_message(self, msg: Message) -> bool | None:
        if msg.message_type is MessageType.SIGNAL:
            if msg.member == "NameOwnerChanged" and msg.sender == DBUS and not msg.body[2]:
                self.subscribers.discard(str(msg.body[0]))
            return None
        if msg.message_type is not MessageType.METHOD_CALL:
            return None
        member = msg.member or ""
        self.calls.append(
            Call(member, msg.interface or "", msg.path or "", tuple(msg.body), msg.sender or "")
        )
        self.called[member].set()
        fault = self._take_fault(member)
        if fault is not None:
            if fault.error is None:
                return True  # handled, and no reply will ever come
            raise DBusError(fault.error, fault.text)
        # dbus-fast calls the (synchronous) method right after this handler returns.
        self._sender = msg.sender or ""
        return None

    # -- manager -----------------------------------------------------------------------------

    def _subscribe(self) -> None:
        if self._sender in self.subscribers:
            raise DBusError(ALREADY_SUBSCRIBED, "Client is already subscribed.")
        self.subscribers.add(self._sender)

    def _unsubscribe(self) -> None:
        if self._sender not in self.subscribers:
            raise DBusError(NOT_SUBSCRIBED, "Client is not subscribed.")
        self.subscribers.discard(self._sender)

    def _reloading(self, active: bool) -> None:
        if self.subscribers and self._conn is not None:
            self._conn.manager.reloading(active)

    def _reset_failed(self, name: str) -> None:
        unit = self.units.get(name)
        if unit is None:
            raise DBusError(NO_SUCH_UNIT, f"Unit {name} not loaded.")
        if unit["ActiveState"] == "failed":
            self.set_unit(name, ActiveState="inactive", SubState="dead", Result="success")
        elif unit.is_service:
            unit.props["Result"] = "success"

    # -- jobs --------------------------------------------------------------------------------

    def hold_jobs(self) -> None:
        """Jobs started from now on stop just before their last step until release_jobs()."""
        if self._held is None:
            self._held = asyncio.Event()

    def release_jobs(self) -> None:
        """Let held jobs finish."""
        held, self._held = self._held, None
        if held is not None:
            held.set()

    async def wait_job(self, count: int = 1, timeout_s: float = 5.0) -> FakeJob:
        """Wait until the `count`-th job the fake made has finished; return it."""
        async with asyncio.timeout(timeout_s):
            while len(self.jobs) < count:
                self._job_made.clear()
                await self._job_made.wait()
            job = self.jobs[count - 1]
            await job.finished.wait()
        return job

    def _enqueue(self, kind: str, name: str, mode: str) -> str:
        if mode not in JOB_MODES:
            raise DBusError(INVALID_ARGS, f"Job mode {mode} invalid.")
        unit = self._load(name)
        if unit["LoadState"] == "not-found":
            raise DBusError(NO_SUCH_UNIT, f"Unit {name} not found.")
        if unit["LoadState"] == "masked":
            raise DBusError(UNIT_MASKED, f"Unit {name} is masked.")
        job = FakeJob(next(self._job_ids), kind, name, self._sender)
        steps = self._steps(job, unit)
        job.result = unit.job_result if steps else "done"  # nothing to do is done at once
        self.jobs.append(job)
        self._job_made.set()
        if self.jobs_finish_before_reply:
            self._job_signal(job, new=True)
            for change in steps:
                self.set_unit(name, **change)
            self._end(job)
        else:
            task = asyncio.get_running_loop().create_task(self._run(job, steps))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return job.path

    async def _run(self, job: FakeJob, steps: list[dict[str, Any]]) -> None:
        # The reply with the job path has been sent already (the method returned), so, as on
        # systemd, JobNew and the unit's changes reach the caller after it.
        self._job_signal(job, new=True)
        for i, change in enumerate(steps):
            held = self._held
            if i == len(steps) - 1 and held is not None:
                await held.wait()
            self.set_unit(job.unit, **change)
        self._end(job)

    def _end(self, job: FakeJob) -> None:
        self._job_signal(job, new=False)
        job.finished.set()

    def _steps(self, job: FakeJob, unit: FakeUnit) -> list[dict[str, Any]]:
        running = unit["ActiveState"] in _RUNNING
        steps: list[dict[str, Any]] = []
        if job.kind in ("stop", "restart") and running:
            steps.append({"ActiveState": "deactivating", "SubState": "stop-sigterm"})
            steps.append(_stopped(unit))
        if job.kind == "start" and running:
            return steps  # nothing to do: the job is done at once
        if job.kind in ("start", "restart"):
            steps.append({"ActiveState": "activating", "SubState": "start"})
            steps.append(self._outcome(unit))
        return steps

    def _outcome(self, unit: FakeUnit) -> dict[str, Any]:
        result = unit.job_result
        if result == "done":
            pid = next(self._pids)
            change: dict[str, Any] = {"ActiveState": "active", "SubState": "running"}
            if unit.is_service:
                change |= {"MainPID": pid, "ExecMainPID": pid, "Result": "success"}
                change |= {"ExecMainCode": 0, "ExecMainStatus": 0}
            return change
        if result in ("failed", "timeout"):
            change = {"ActiveState": "failed", "SubState": "failed"}
            if unit.is_service:
                why = "timeout" if result == "timeout" else "exit-code"
                change |= {"MainPID": 0, "Result": why, "ExecMainCode": 1, "ExecMainStatus": 1}
            return change
        return _stopped(unit)  # canceled, dependency, skipped...: it never started

    def _job_signal(self, job: FakeJob, *, new: bool) -> None:
        conn = self._conn
        # systemd sends job signals to subscribers, and to the job's requester in any case.
        if conn is None or not (self.subscribers or job.requester):
            return
        if new:
            conn.manager.job_new(job.id, job.path, job.unit)
        else:
            conn.manager.job_removed(job.id, job.path, job.unit, job.result)

    # -- signals on demand -------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until the bus has read everything sent so far (one round trip to it).

        Call it between bursts of signals: dbus-fast treats a full socket buffer (EAGAIN) as
        a lost connection (python-dbus-next issue 153, inherited), so a few hundred signals
        sent without yielding to the event loop can drop the fake off the bus.
        """
        reply = await self._require().bus.call(
            Message(destination=DBUS, path="/org/freedesktop/DBus", interface=DBUS, member="GetId")
        )
        assert reply is not None and reply.message_type is MessageType.METHOD_RETURN

    def emit_properties_changed(
        self,
        name: str,
        interface: str,
        changed: dict[str, Any],
        invalidated: Iterable[str] = (),
    ) -> None:
        """Send exactly this PropertiesChanged for a unit (its model is left alone)."""
        for obj in self._require().objects[name]:
            if obj.name == interface:
                obj.emit_properties_changed(changed, list(invalidated))
                return
        raise KeyError(f"{name} has no interface {interface}")

    def emit_reloading(self, active: bool) -> None:
        """Send Reloading(active), as around a daemon-reload."""
        self._require().manager.reloading(active)

    def emit_job_removed(self, job_id: int, unit: str, result: str) -> None:
        """Send a JobRemoved for any job id, real or not."""
        self._require().manager.job_removed(job_id, f"{JOB_PATHS}/{job_id}", unit, result)

    def emit_unit_new(self, name: str) -> None:
        """Send UnitNew for a unit."""
        self._require().manager.unit_new(name, unit_path(name))

    def emit_unit_removed(self, name: str) -> None:
        """Send UnitRemoved for a unit."""
        self._require().manager.unit_removed(name, unit_path(name))


def _default_sub(active: str) -> str:
    return {
        "active": "running",
        "inactive": "dead",
        "failed": "failed",
        "activating": "start",
        "deactivating": "stop-sigterm",
        "reloading": "reload",
    }.get(active, "dead")


def _stopped(unit: FakeUnit) -> dict[str, Any]:
    change: dict[str, Any] = {"ActiveState": "inactive", "SubState": "dead"}
    if unit.is_service:
        change |= {"MainPID": 0, "Result": "success"}
    return change


def _emits(name: str) -> bool:
    spec = UNIT_PROPERTIES.get(name) or SERVICE_PROPERTIES.get(name)
    return spec is not None and spec[1]


def _check_names(props: dict[str, Any]) -> None:
    unknown = set(props) - set(UNIT_PROPERTIES) - set(SERVICE_PROPERTIES)
    if unknown:
        raise KeyError(f"not a property the fake knows: {', '.join(sorted(unknown))}")
