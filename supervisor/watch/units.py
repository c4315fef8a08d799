"""systemd's unit properties as our `UnitState`, and where the user bus is. Pure."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from supervisor.model import ActiveState, UnitState

_UNSET_U64 = 2**64 - 1  # systemd's "not set" for MemoryCurrent, CPUUsageNSec
__all__ = ["FIELDS", "_u64", "bus_address", "merge"]


def bus_address(env: Mapping[str, str] = os.environ) -> str:
    """The user bus: DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus."""
    if address := env.get("DBUS_SESSION_BUS_ADDRESS"):
        return address
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return f"unix:path={runtime}/bus"


def _u64(value: int) -> int | None:
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
    "MemoryCurrent": ("memory_bytes", _u64),
    "CPUUsageNSec": ("cpu_nsec", _u64),
    "ControlGroup": ("control_group", str),
    "ExecMainCode": ("exit_code", int),
    "ExecMainStatus": ("exit_status", int),
    "Job": ("job_id", lambda job: int(job[0])),  # (id, path); id 0: no job queued
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
