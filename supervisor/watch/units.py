"""systemd's unit properties as our `UnitState`, a unit judged on them alone, and where the
user bus is. Pure."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from supervisor.model import ActiveState, Status, UnitState

_UNSET_U64 = 2**64 - 1  # systemd's "not set" for MemoryCurrent, CPUUsageNSec
__all__ = ["FIELDS", "bus_address", "merge", "u64", "unit_verdict"]


def bus_address(env: Mapping[str, str] = os.environ) -> str:
    """The user bus: DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus."""
    if address := env.get("DBUS_SESSION_BUS_ADDRESS"):
        return address
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return f"unix:path={runtime}/bus"


def u64(value: int) -> int | None:
    return None if value == _UNSET_U64 else int(value)


# D-Bus property -> (UnitState field, converter).
FIELDS: dict[str, tuple[str, Any]] = {
    "LoadState": ("load_state", str),
    "ActiveState": ("active_state", ActiveState.parse),
    "SubState": ("sub_state", str),
    "Result": ("result", str),
    "MainPID": ("main_pid", int),
    "NRestarts": ("n_restarts", int),
    "StateChangeTimestamp": ("state_change_usec", int),
    "MemoryCurrent": ("memory_bytes", u64),
    "CPUUsageNSec": ("cpu_nsec", u64),
    "ControlGroup": ("control_group", str),
    "ExecMainCode": ("exit_code", int),
    "ExecMainStatus": ("exit_status", int),
    "Job": ("job_id", lambda job: int(job[0])),  # (id, path); id 0: no job queued
    "Requires": ("requires", lambda units: tuple(map(str, units))),
    "BindsTo": ("binds_to", lambda units: tuple(map(str, units))),
    "PartOf": ("part_of", lambda units: tuple(map(str, units))),
    "After": ("after", lambda units: tuple(map(str, units))),
}


def merge(state: UnitState, props: Mapping[str, Any]) -> UnitState:
    """Fold D-Bus properties (Variants or plain values) into a unit state."""
    changes: dict[str, Any] = {}
    for key, value in props.items():
        spec = FIELDS.get(key)
        if spec is not None:
            raw = getattr(value, "value", value)  # a dbus Variant, or a plain value
            changes[spec[0]] = spec[1](raw)
    return replace(state, **changes) if changes else state


def unit_verdict(unit: UnitState) -> tuple[Status, str]:
    """Judge a unit from systemd's state alone ("active" is necessary, not sufficient)."""
    if not unit.found:
        return Status.FAIL, f"unit {unit.unit} not found (LoadState={unit.load_state})"
    state, sub = unit.active_state, unit.sub_state
    words = f"{state.value} ({sub})" if sub else state.value
    if state in (ActiveState.ACTIVE, ActiveState.RELOADING, ActiveState.REFRESHING):
        return Status.PASS, words
    if state is ActiveState.ACTIVATING and sub == "auto-restart":
        return Status.FAIL, f"{words}: exited ({unit.result}), systemd is restarting it"
    if state in (ActiveState.ACTIVATING, ActiveState.DEACTIVATING):
        return Status.WARN, words
    if state is ActiveState.UNKNOWN:
        return Status.UNKNOWN, "state unknown"
    if state is ActiveState.INACTIVE and unit.job_id and unit.result == "success":
        # A restart (ours, mostly) passes through inactive (dead) with its job still on the
        # unit: between two processes, not a new failure (after a crash Result says so).
        return Status.WARN, f"{words}: job {unit.job_id} under way"
    result = f", result {unit.result}" if unit.result and unit.result != "success" else ""
    return Status.FAIL, f"{words}{result}"
