"""What a chaos run records: the ground truth of its faults and what it saw of the supervisor.

Plain data, all times wall-clock seconds (``time.time()``), so they line up with the
supervisor's log, /proc start times and the stamps in its alerts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from devtools.chaos.plan import Kind, Planned


@dataclass
class Fault:
    """One planned fault and what became of it (the ground-truth log)."""

    plan: Planned
    start: float | None = None  # injected
    lifted: float | None = None  # its cause was taken away (or it needed no taking away)
    detected: float | None = None  # first sign, in the supervisor's outputs, that it noticed
    repaired: float | None = None  # the supervisor's repair is complete
    ended: float | None = None  # nothing of it is left (repaired, or cleaned up by the run)
    victim: int | None = None  # the PID it hit, if any
    # A reload: the critical targets the config it wrote names (each reload flips one), which
    # /health must show after the SIGHUP, from the life that was signalled.
    shows: tuple[str, ...] | None = None
    life: int = 0
    skipped: str = ""  # why it was never injected
    notes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> Kind:
        """Its kind."""
        return self.plan.kind

    @property
    def target(self) -> str | None:
        """The target it hits, if any."""
        return self.plan.target

    def active(self, at: float, slack: float = 0.0) -> bool:
        """True if it was under way at `at` (widened by `slack` on both sides)."""
        if self.start is None:
            return False
        end = self.ended if self.ended is not None else float("inf")
        return self.start - slack <= at <= end + slack

    def to_json(self) -> dict[str, Any]:
        """One line of the ground-truth log."""
        data = asdict(self)
        data.update(data.pop("plan"))
        return data


@dataclass(frozen=True)
class HealthSample:
    """One GET /health: how long it took and what it said (statuses: target -> status)."""

    at: float
    latency_s: float | None  # None: no answer (refused, timed out)
    code: int
    statuses: dict[str, str]  # pass / warn / fail / unknown (the `state` field wins)
    outputs: dict[str, str]
    notes: str
    life: int  # which run of the supervisor was asked
    critical: tuple[str, ...] = ()  # the targets it marks critical (from the config in force)


@dataclass(frozen=True)
class Incarnation:
    """A main process of a unit, seen by polling systemd, with its start time from /proc."""

    target: str
    pid: int
    started: float


@dataclass(frozen=True)
class UnitSample:
    """One reading of a unit from systemd by the run itself (`systemctl --user show`): ground
    truth that does not come from the supervisor."""

    at: float  # when the run asked (systemd answered after: what it said held by then)
    target: str
    main_pid: int  # MainPID (0: no main process)
    exec_pid: int  # ExecMainPID: the last main process started (kept after it exits)
    exec_started: float  # when that process was started (ExecMainStartTimestampMonotonic)
    n_restarts: int  # NRestarts: starts by systemd's own Restart= (the sandbox sets no)
    state: str = ""  # ActiveState/SubState


@dataclass
class Life:
    """One run of the supervisor process, from spawn to exit."""

    n: int
    pid: int
    spawned: float
    ready: float | None = None
    exited: float | None = None
    exit_code: int | None = None
    killed: str = ""  # what the run did to end it ("SIGKILL (fault 12)", "SIGTERM at the end")
    watchdog: list[float] = field(default_factory=list)  # times of WATCHDOG=1
    # (chat, text) of each message the state file held undelivered when this life was
    # spawned: what it sends first, again if Telegram took it just before the last life died.
    inherited: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ProcSample:
    """The supervisor's footprint at one moment."""

    at: float
    life: int
    rss_bytes: int
    fds: int
    cpu_s: float
    quiet: bool  # no fault under way, nothing waiting to be delivered
    fd_kinds: str = ""  # what the descriptors are: "socket 8, pipe 2, file 1, eventpoll 1"
    waiting: int | None = None  # alerts in the outbox, per /metrics
    waiting_in_file: int | None = None  # and per the state file (what a restart would resend)
    threads: int | None = None  # the process's threads (each may hold a malloc arena)


@dataclass(frozen=True)
class ActionDelta:
    """Recovery actions the supervisor counted between two scrapes of /metrics."""

    since: float
    at: float
    target: str
    action: str
    result: str
    count: float


@dataclass(frozen=True)
class Message:
    """One message the fake Bot API accepted."""

    at: float
    chat_id: int
    text: str


@dataclass(frozen=True)
class LogEvent:
    """A line of the supervisor's log the run looks for (see `observe.LOG_EVENTS`)."""

    at: float
    what: str
    line: str


@dataclass(frozen=True)
class LoadResult:
    """What one burst of HTTP load did."""

    fault: int
    requests: int
    non_2xx: int
    socket_errors: int
    rps: float


@dataclass
class Record:
    """Everything a run saw; `verdict.judge` reads it, nothing else."""

    seed: int
    short: bool = False
    began: float = 0.0  # the warm-up fault was injected (the fleet had settled)
    started: float = 0.0  # the chaos phase began (after warm-up)
    finished: float = 0.0  # the last fault ended and the supervisor settled
    faults: list[Fault] = field(default_factory=list)
    health: list[HealthSample] = field(default_factory=list)
    incarnations: list[Incarnation] = field(default_factory=list)
    n_restarts: dict[str, int] = field(default_factory=dict)  # systemd's own, at the end
    lives: list[Life] = field(default_factory=list)
    proc: list[ProcSample] = field(default_factory=list)
    units: list[UnitSample] = field(default_factory=list)  # systemd's view, twice a second
    # The host as the run reads it itself (/proc/stat, /proc/meminfo), each second: (at, %).
    host_cpu: list[tuple[float, float]] = field(default_factory=list)  # busy since the last
    host_memory: list[tuple[float, float]] = field(default_factory=list)  # in use (not available)
    actions: list[ActionDelta] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    log: list[LogEvent] = field(default_factory=list)
    loads: list[LoadResult] = field(default_factory=list)
    chats: tuple[int, ...] = ()
    watchdog_s: float = 30.0
    alert_cooldown_s: float = 900.0
    alert_threshold: int = 3  # [alerts] failure_threshold: failed rounds before an incident
    round_s: float = 5.0  # one round: the targets' probe period
    max_attempts: int = 4  # [targets.recovery] max_attempts
    recovery_window_s: float = 30.0  # [targets.recovery] window_s
    # The longest a probe takes to see a fault of its target (see `due.due_after_s`).
    probe_allowance_s: float = 16.0
    errors: list[str] = field(default_factory=list)  # what went wrong in the run itself
