"""When a fault counts as detected and as repaired, read from the supervisor's own outputs.

Pure: the controller hands in what arrived since its last look (`Batch`) and the present
state (`Now`); nothing here reads a clock or a socket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from devtools.chaos.plan import SPECS, Kind, Scope
from devtools.chaos.record import ActionDelta, Fault, HealthSample, Incarnation, LogEvent

# A main process started this much before our record of the injection still follows it
# (the clocks of /proc and time.time() differ by a few milliseconds).
START_SLACK_S = 0.05


@dataclass(frozen=True)
class Batch:
    """What the pollers saw since the controller last looked."""

    health: Sequence[HealthSample] = ()
    incarnations: Sequence[Incarnation] = ()
    actions: Sequence[ActionDelta] = ()
    events: Sequence[LogEvent] = ()


@dataclass(frozen=True)
class Now:
    """The present, as far as the run knows it."""

    at: float
    health: HealthSample | None  # the last /health that answered
    main_pid: Mapping[str, int]  # what systemd says each unit's main process is
    main_started: Mapping[str, float]  # and when that process started
    supervisor_pid: int  # the supervisor's PID once it said READY=1 (0: down or starting)
    outbox: int | None  # alerts waiting for delivery (/metrics)
    outbox_since: float = 0.0  # when the oldest of them was queued (inf: none waits)


def sign_of_detection(fault: Fault, batch: Batch) -> float | None:
    """The earliest sign in `batch` that the supervisor noticed `fault`, if any."""
    assert fault.start is not None
    start = fault.start
    signs: list[float] = []
    target = fault.target
    if SPECS[fault.kind].scope is Scope.TARGET and target is not None:
        signs += [s.at for s in batch.health if s.at >= start and s.statuses.get(target) == "fail"]
        signs += [
            i.started
            for i in batch.incarnations
            if i.target == target and i.started >= start - START_SLACK_S
        ]
        signs += [a.at for a in batch.actions if a.target == target and a.at >= start]
    elif fault.kind is Kind.BUS_KILL:
        signs += [s.at for s in batch.health if s.at >= start and _blind(s)]
        signs += [e.at for e in batch.events if e.at >= start and e.what == "bus-lost"]
    elif fault.kind is Kind.REEXEC:
        signs += [e.at for e in batch.events if e.at >= start and e.what == "reexec"]
    elif fault.kind is Kind.RELOAD:
        # Its new config in force: the life that was signalled shows what the config says (a
        # rejected or lost reload never does; the config written before differs).
        signs += [
            s.at
            for s in batch.health
            if s.at >= start and s.life == fault.life and s.statuses and s.critical == fault.shows
        ]
    return min(signs) if signs else None


def _blind(sample: HealthSample) -> bool:
    """The supervisor says it cannot see systemd (bus lost)."""
    return "D-Bus" in sample.notes or any(s == "unknown" for s in sample.statuses.values())


def is_repaired(fault: Fault, now: Now, cause_gone: bool) -> bool:
    """True once the supervisor has undone `fault` (only asked of kinds recovery applies to)."""
    kind, health = fault.kind, now.health
    if not cause_gone or fault.lifted is None:
        return False
    if kind in (Kind.TELEGRAM_DOWN, Kind.TELEGRAM_429):
        # Everything that waited when Telegram came back was delivered (new alerts may wait).
        return now.supervisor_pid != 0 and now.outbox_since > fault.lifted
    # Anything else is judged from a /health answered after the cause was gone.
    if health is None or health.at <= fault.lifted or now.supervisor_pid == 0:
        return False
    if SPECS[kind].scope is Scope.TARGET and fault.target is not None:
        # A new main process, and a pass said about it (not a pass from before it died).
        pid, started = now.main_pid.get(fault.target, 0), now.main_started.get(fault.target, 0.0)
        new = pid not in (0, fault.victim) and health.at > started
        return new and health.statuses.get(fault.target) == "pass"
    if kind is Kind.BUS_KILL:
        return fault.detected is not None and not _blind(health)
    if kind is Kind.SUPERVISOR_KILL:
        return now.supervisor_pid != fault.victim
    return True
