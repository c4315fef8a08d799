"""The fake systemd's model, with no bus in it: systemd's D-Bus names and error names, the
unit property tables, units and jobs, and the states a job walks a unit through.

`tests.fakes.systemd_bus.FakeSystemd` puts this model on a bus.
"""

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

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
    "InvocationID": ("ay", False),
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
    "ExecMainStartTimestamp": ("t", False),
    "ExecMainExitTimestamp": ("t", False),
    "MemoryMax": ("t", False),
    "StandardOutput": ("s", False),
    "StandardOutputFileDescriptorName": ("s", False),
}
RUNNING = frozenset({"active", "reloading", "activating", "deactivating", "refreshing"})


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


def usec() -> int:
    """Now, in systemd's timestamps' unit (microseconds since the epoch)."""
    return int(time.time() * 1_000_000)


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

    def apply(self, props: dict[str, Any]) -> set[str]:
        """Change properties as systemd does (a new ActiveState stamps its timestamps, unless
        given); return the names whose value changed."""
        before = dict(self.props)
        state = props.get("ActiveState", before["ActiveState"])
        if state != before["ActiveState"]:
            now = usec()
            props.setdefault("StateChangeTimestamp", now)
            if state == "active":
                props.setdefault("ActiveEnterTimestamp", now)
            elif state in ("inactive", "failed"):
                props.setdefault("InactiveEnterTimestamp", now)
        self.props.update(props)
        return {k for k in props if before.get(k) != self.props[k]}


def new_unit_props(
    name: str, active: str, sub: str | None, load: str, pids: Iterator[int]
) -> dict[str, Any]:
    """A new unit's properties, as systemd shows a unit in this state (MainPID from `pids`)."""
    now = usec()
    running = active in RUNNING
    pid = next(pids) if running else 0
    values: dict[str, Any] = {
        "Id": name,
        "Description": f"fake {name}",
        "LoadState": load,
        "ActiveState": active,
        "SubState": sub or _default_sub(active),
        "LoadError": ("", "") if load != "not-found" else (NO_SUCH_UNIT, f"Unit {name} not found."),
        "FragmentPath": "" if load == "not-found" else f"/fake/units/{name}",
        "StateChangeTimestamp": now,
        "ActiveEnterTimestamp": now if running else 0,
        "InactiveEnterTimestamp": 0 if running else now,
        "InvocationID": bytes(16),
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
            "ExecMainStartTimestamp": now if running else 0,
            "ExecMainExitTimestamp": 0,
            "MemoryMax": UNSET_U64,
            "StandardOutput": "journal",
            "StandardOutputFileDescriptorName": "stdout",
        }
    return values


def job_steps(job: FakeJob, unit: FakeUnit, pids: Iterator[int]) -> list[dict[str, Any]]:
    """The changes a job makes to its unit, in order (none: the job is done at once)."""
    running = unit["ActiveState"] in RUNNING
    steps: list[dict[str, Any]] = []
    if job.kind in ("stop", "restart") and running:
        steps.append({"ActiveState": "deactivating", "SubState": "stop-sigterm"})
        steps.append(_stopped(unit))
    if job.kind == "start" and running:
        return steps  # nothing to do: the job is done at once
    if job.kind in ("start", "restart"):
        steps.append({"ActiveState": "activating", "SubState": "start"})
        steps.append(_outcome(unit, pids))
    return steps


def _outcome(unit: FakeUnit, pids: Iterator[int]) -> dict[str, Any]:
    result = unit.job_result
    if result == "done":
        pid = next(pids)
        change: dict[str, Any] = {"ActiveState": "active", "SubState": "running"}
        if unit.is_service:
            change |= {"MainPID": pid, "ExecMainPID": pid, "Result": "success"}
            change |= {"ExecMainCode": 0, "ExecMainStatus": 0}
            change |= {"ExecMainStartTimestamp": usec(), "ExecMainExitTimestamp": 0}
            change |= {"InvocationID": os.urandom(16)}
        return change
    if result in ("failed", "timeout"):
        change = {"ActiveState": "failed", "SubState": "failed"}
        if unit.is_service:
            why = "timeout" if result == "timeout" else "exit-code"
            change |= {"MainPID": 0, "Result": why, "ExecMainCode": 1, "ExecMainStatus": 1}
        return change
    return _stopped(unit)  # canceled, dependency, skipped...: it never started


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


def emits(name: str) -> bool:
    """Whether a change of this property goes out in PropertiesChanged."""
    spec = UNIT_PROPERTIES.get(name) or SERVICE_PROPERTIES.get(name)
    return spec is not None and spec[1]


def check_names(props: dict[str, Any]) -> None:
    """KeyError unless every name is a property in the tables above."""
    unknown = set(props) - set(UNIT_PROPERTIES) - set(SERVICE_PROPERTIES)
    if unknown:
        raise KeyError(f"not a property the fake knows: {', '.join(sorted(unknown))}")
