"""Plain data passed between detection, decision and action: enums and frozen dataclasses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Status(StrEnum):
    """Health of a target or of the whole fleet (the IETF health-check draft's words)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"  # we cannot tell (bus down, first read pending); shown as warn


class ActiveState(StrEnum):
    """systemd's ActiveState of a unit."""

    ACTIVE = "active"
    RELOADING = "reloading"
    INACTIVE = "inactive"
    FAILED = "failed"
    ACTIVATING = "activating"
    DEACTIVATING = "deactivating"
    MAINTENANCE = "maintenance"
    REFRESHING = "refreshing"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: str) -> ActiveState:
        """Map systemd's string, tolerating states a newer systemd may add."""
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


class Clock(Protocol):
    """Time source; the pure core takes it injected so tests need no sleeping."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (for display only)."""


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()


@dataclass(frozen=True, slots=True)
class UnitState:
    """What systemd says about one unit (a merge of GetAll and PropertiesChanged)."""

    unit: str
    load_state: str = "loaded"
    active_state: ActiveState = ActiveState.UNKNOWN
    sub_state: str = ""
    result: str = "success"
    main_pid: int = 0
    n_restarts: int = 0
    state_change_usec: int = 0  # wall clock, microseconds since the epoch
    memory_bytes: int | None = None  # MemoryCurrent; None where systemd leaves it unset
    cpu_nsec: int | None = None  # CPUUsageNSec; None where unset (cgroup v1)
    control_group: str = ""
    exit_code: int = 0  # ExecMainCode: a CLD_* code (1 exited, 2 killed, 3 dumped); 0 none yet
    exit_status: int = 0  # ExecMainStatus: the exit status or the signal number
    job_id: int = 0  # a job systemd has queued for the unit (its own Restart=, or ours)
    # A job someone else asked systemd for (systemctl stop/restart/start): its JobType
    # ("stop", "restart", "start", ...) or "unknown" when it ended before we could read it;
    # None while no such job is on the unit. Set by the D-Bus adapter, never by systemd.
    operator_job: str | None = None
    # The units it needs, as systemd says (Requires=, BindsTo=, PartOf=, After=).
    requires: tuple[str, ...] = ()
    binds_to: tuple[str, ...] = ()
    part_of: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """False when systemd has no such unit file."""
        return self.load_state not in ("not-found", "bad-setting", "error", "masked")


@dataclass(frozen=True, slots=True)
class Hold:
    """A person's "I am working on it": no recovery and no alerts for a target until `until`."""

    until: float  # wall clock
    reason: str = ""
    by: str = ""  # who set it: "cli:alice", "http:127.0.0.1", "chat:@bob"
    since: float = 0.0  # wall clock


@dataclass(frozen=True, slots=True)
class Flapping:
    """A target that keeps failing and recovering: `count` failures within `span_s`."""

    count: int
    span_s: float
    since: float  # wall clock of the first failure counted


@dataclass(frozen=True, slots=True)
class PerfDatum:
    """One figure a check reported (Nagios performance data), in base units."""

    label: str
    value: float
    unit: str = ""  # "seconds", "bytes", "ratio" (from %), or "" (a count, or no unit)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe run: its level (pass, warn, fail, unknown) and why, in words to act on."""

    target: str
    probe: str  # probe id within the target, e.g. "http" or "heartbeat#2"
    kind: str  # http | tcp | heartbeat | resources | exec | disk | memory | load
    status: Status  # unknown: the check could not tell (never counted as a failure)
    output: str
    duration_s: float
    observed_value: float | None = None
    observed_unit: str | None = None
    source: str | None = None  # where a resource figure came from: "cgroup" or "proc"
    samples: tuple[tuple[str, float], ...] = ()  # extra figures for /metrics (memory, CPU)
    perfdata: tuple[PerfDatum, ...] = ()
    stuck: bool = False  # a failure /proc proved final: the process is stuck, not slow

    @property
    def ok(self) -> bool:
        """True when the probe passed outright."""
        return self.status is Status.PASS


@dataclass(frozen=True, slots=True)
class ProbeView:
    """A probe's state as seen in a snapshot."""

    probe: str
    kind: str
    status: Status
    output: str
    consecutive_failures: int
    observed_value: float | None = None
    observed_unit: str | None = None
    source: str | None = None
    perfdata: tuple[PerfDatum, ...] = ()


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """A target's health at one moment: everything /health and the policies need."""

    name: str
    unit: str | None  # None: a host target
    critical: bool
    status: Status
    output: str
    since: float  # wall clock of the last status change
    consecutive_failures: int
    last_success: float | None
    unit_state: UnitState | None
    probes: tuple[ProbeView, ...] = ()
    recovery: str = "idle"
    stopped_at: float | None = None  # wall clock of a stop someone asked systemd for
    starting: tuple[float, float] | None = None  # (seconds since start, grace) while in grace
    hold: Hold | None = None
    flapping: Flapping | None = None
    # Dependencies (watch/deps.py): the root cause this target waits for while a target it
    # needs is down; the root it was freed from (and when) once that came back; and every
    # target that needs this one, directly or through others.
    blocked_by: str | None = None
    freed_from: str | None = None
    freed_at: float | None = None
    dependants: tuple[str, ...] = ()

    @property
    def back(self) -> bool:
        """Up again for real: passing (or only warning) with a running unit, past its grace.

        A unit that is activating, or inside its start-up grace, is not back yet: a resolved
        notice then would be a guess.
        """
        if self.status not in (Status.PASS, Status.WARN) or self.starting is not None:
            return False
        if self.stopped_at is not None:
            return False
        unit = self.unit_state
        return self.unit is None or (unit is not None and unit.active_state is ActiveState.ACTIVE)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole picture, immutable; rendered by /health, /metrics, STATUS= and the CLI."""

    version: int
    time: float
    status: Status
    targets: tuple[TargetHealth, ...]
    notes: tuple[str, ...] = field(default=())  # fleet-level degradations, e.g. "bus down"

    def target(self, name: str) -> TargetHealth | None:
        """The named target, or None."""
        for t in self.targets:
            if t.name == name:
                return t
        return None


@dataclass(frozen=True, slots=True)
class SelfStats:
    """One sample of our own resource use."""

    uptime_s: float = 0.0
    rss_bytes: int = 0
    cpu_seconds: float = 0.0
    cpu_percent: float = 0.0  # of one core, since the previous sample


@dataclass(frozen=True, slots=True)
class UnitResources:
    """What systemd reports of a unit's cgroup (None where the host leaves it unset)."""

    memory_bytes: int | None
    cpu_nsec: int | None
    control_group: str


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message or a button press from a chat."""

    update_id: int
    chat_id: int
    date: float  # wall clock
    text: str = ""
    callback_id: str = ""
    callback_data: str = ""
    sender: str = ""  # the user's @name, or their id when they have none (for logs)
    user_id: int = 0  # who sent it or pressed the button


def backoff(delays: tuple[float, ...] | list[float], attempt: int) -> float:
    """The delay for the `attempt`-th retry (0-based): the schedule's last entry repeats."""
    return delays[min(max(attempt, 0), len(delays) - 1)]
