"""What happened, as small typed records: the one way events travel. Pure data, no I/O.

A part that acts emits one of these through the `Emit` it was handed and knows no more: the
dispatcher the composition layer builds (`app/dispatch.py`) hands each one to whoever
subscribed to its type (history, metrics, logs, the event stream, the alert policy). A new
destination subscribes there; no producer changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from supervisor.model import UnitState


class JobResult(StrEnum):
    """How a systemd job ended (JobRemoved's result), or that we could not follow it."""

    DONE = "done"
    CANCELED = "canceled"
    TIMEOUT = "timeout"
    FAILED = "failed"
    DEPENDENCY = "dependency"
    SKIPPED = "skipped"
    INVALID = "invalid"  # a result string systemd has not documented


def job_result(words: str) -> JobResult:
    """systemd's word for how a job ended, as our type (one it has not documented: INVALID)."""
    try:
        return JobResult(words)
    except ValueError:
        return JobResult.INVALID


class Step(StrEnum):
    """One thing recovery does to a target."""

    RUN = "run"  # the configured cure command
    FREE_PORT = "free-port"
    RESTART = "restart"
    RESET_START = "reset-failed+start"  # systemd's start limit was hit
    MANUAL_RESTART = "manual-restart"  # a person asked (chat command)
    GIVE_UP = "give-up"


@dataclass(frozen=True, slots=True)
class Repair:
    """The steps of one recovery attempt, in order; `label` names it in metrics and history."""

    steps: tuple[Step, ...]

    @property
    def label(self) -> str:
        """`run+free-port+restart`: the `action` label of supervisor_recovery_actions_total."""
        return "+".join(s.value for s in self.steps)

    def then(self, step: Step) -> Repair:
        """This repair with `step` done first (what runs before the restart is named first)."""
        return Repair((step, *self.steps))


class Outcome(StrEnum):
    """How a recovery attempt ended (the `result` label of supervisor_recovery_actions_total)."""

    DONE = "done"
    CANCELED = "canceled"
    TIMEOUT = "timeout"
    FAILED = "failed"
    DEPENDENCY = "dependency"
    SKIPPED = "skipped"
    INVALID = "invalid"
    DRY_RUN = "dry-run"
    BLOCKED = "blocked"  # a safety rule forbade freeing the port
    BUS_ERROR = "bus-error"
    ERROR = "error"  # our own unexpected trouble
    CANNOT_RUN = "cannot-run"  # the cure command could not be started
    KILLED = "killed"  # a port's holder was stopped
    GAVE_UP = "gave-up"

    @classmethod
    def of(cls, job: JobResult) -> Outcome:
        """The outcome a systemd job's result stands for."""
        return cls(job.value)


JOB_OUTCOMES = frozenset(Outcome.of(j) for j in JobResult)


def result_words(outcome: Outcome, exit_code: int | None = None, error: str = "") -> str:
    """`done`, `failed (exit 3)`, `failed: why`: an outcome as history and chat show it."""
    words = outcome.value
    if exit_code is not None and outcome is Outcome.FAILED:
        words += f" (exit {exit_code})"
    return f"{words}: {error}" if error else words


@dataclass(frozen=True, slots=True)
class CureStarting:
    """The target's `run` command is about to run."""

    target: str
    attempt: int
    max_attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class RecoveryStarted:
    """The job of an attempt starts now, or (dry_run) would start: nothing is done then."""

    target: str
    repair: Repair
    attempt: int
    max_attempts: int
    reason: str
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class RecoveryFinished:
    target: str
    repair: Repair
    outcome: Outcome
    attempt: int
    max_attempts: int
    exit_code: int | None = None  # the cure's, when the attempt was the cure alone
    error: str = ""  # what went wrong, in words (a bus error)

    @property
    def result(self) -> str:
        """The outcome in words (history's `result`)."""
        return result_words(self.outcome, self.exit_code)

    @property
    def job_ran(self) -> bool:
        """True when the attempt got as far as a systemd job and the job ended."""
        job = self.repair.steps[-1] in (Step.RESTART, Step.RESET_START)
        return job and self.outcome in JOB_OUTCOMES


@dataclass(frozen=True, slots=True)
class RecoveryGaveUp:
    target: str
    unit: str | None
    reason: str
    next_try: str


@dataclass(frozen=True, slots=True)
class RecoveryReset:
    """A person cleared a target's give-up."""

    target: str


@dataclass(frozen=True, slots=True)
class ManualRestart:
    """A person asked for a restart; `outcome` is None while it runs."""

    target: str
    unit: str
    outcome: Outcome | None = None
    error: str = ""  # why it failed, when the bus failed

    @property
    def result(self) -> str:
        """The outcome in words (`done`, `failed: why`)."""
        return "" if self.outcome is None else result_words(self.outcome, error=self.error)


@dataclass(frozen=True, slots=True)
class CureRan:
    """The target's `run` command ended (exit_code None: timed out or never started)."""

    target: str
    program: str
    outcome: Outcome
    exit_code: int | None
    output: str  # what it said (stdout and stderr, one line), or why it could not start

    @property
    def result(self) -> str:
        """The outcome in words (`done`, `timeout`, `failed (exit 3)`)."""
        return result_words(self.outcome, self.exit_code)


@dataclass(frozen=True, slots=True)
class PortFreed:
    target: str
    port: int
    holder: str  # the holder described: pid, user, command line
    pid: int
    cmdline: str
    user: str
    outcome: str  # how it ended, in words ("stopped by SIGTERM", ...)


@dataclass(frozen=True, slots=True)
class PortRefused:
    """A safety rule forbade freeing the port."""

    target: str
    port: int
    rule: str


@dataclass(frozen=True, slots=True)
class AlertQueued:
    """An alert the policy decided on, queued for every chat (or only logged, alerts off)."""

    target: str
    severity: str
    summary: str
    reminder: bool
    reason: str
    recovery: str
    cause: str = ""  # why the target failed, when it was found in time
    log: tuple[str, ...] | None = None  # the unit's last lines, when a cause was looked for
    waited_s: float | None = None  # how long it waited for its cause (None: it did not wait)


@dataclass(frozen=True, slots=True)
class AlertsDisabled:
    why: str


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    """One message's try: delivered, failed (kept for a retry), or refused (dropped)."""

    chat_id: int
    result: str  # "delivered", "failed" or "refused"
    attempts: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class ChatCommand:
    """A command from an allowed chat, and who sent it."""

    command: str
    args: tuple[str, ...]
    user_id: int
    sender: str
    chat_id: int


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    open: bool
    trips: int
    description: str
    reason: str


@dataclass(frozen=True, slots=True)
class BusConnected:
    """Connected (again) to the user bus."""


@dataclass(frozen=True, slots=True)
class BusLost:
    """The user bus went away: every unit's state is unknown until it is back."""

    reason: str


@dataclass(frozen=True, slots=True)
class UnitChanged:
    """A watched unit's state as systemd now tells it (active state, sub-state, MainPID...)."""

    target: str
    state: UnitState


@dataclass(frozen=True, slots=True)
class Blocked:
    """A target waits for `by`, the root cause it needs (None: `root` is back, it is freed)."""

    target: str
    by: str | None
    root: str


@dataclass(frozen=True, slots=True)
class UnitDied:
    """A run of a target's unit ended badly; `details` are its cause and last lines as JSON."""

    target: str
    unit: str
    words: str  # the cause in words ("killed by SIGKILL", ...)
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class HoldSet:
    """A person holds a target: no restarts, no alerts until `until` (wall clock)."""

    target: str
    until: float
    by: str
    reason: str
    words: str  # "trader held until 14:05:09 by cli: ..." (the clock time is local)


@dataclass(frozen=True, slots=True)
class HoldEnded:
    """A hold ended: released by `by`, or its time was up (`expired`)."""

    target: str
    by: str
    expired: bool = False


Happening = (
    CureStarting
    | RecoveryStarted
    | RecoveryFinished
    | RecoveryGaveUp
    | RecoveryReset
    | ManualRestart
    | CureRan
    | PortFreed
    | PortRefused
    | AlertQueued
    | AlertsDisabled
    | AlertDelivery
    | ChatCommand
    | BreakerChanged
    | BusConnected
    | BusLost
    | UnitChanged
    | Blocked
    | UnitDied
    | HoldSet
    | HoldEnded
)
Emit = Callable[[Happening], None]
