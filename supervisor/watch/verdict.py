"""A target as the health model holds it, and the verdict on it: its status and words from
its unit, a stop on request, and its probes (the worst settled level decides; a new process
is `starting` while in its grace). Pure: the time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.model import Hold, Status, UnitState
from supervisor.times import local_clock
from supervisor.watch import intent
from supervisor.watch.intent import FlapRule, FlapTrack
from supervisor.watch.track import ProbeTrack
from supervisor.watch.units import unit_verdict


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What the health model needs to know about a target (taken from its config)."""

    name: str
    unit: str | None  # None: a host target, judged by its probes alone
    critical: bool = False


@dataclass(slots=True)
class TargetState:
    """One target's state: what the model was told of it and what it made of that."""

    spec: TargetSpec
    status: Status = Status.UNKNOWN
    output: str = "waiting for the first read from systemd"
    since: float = 0.0
    consecutive_failures: int = 0
    last_success: float | None = None
    unit: UnitState | None = None
    probes: dict[str, tuple[str, ProbeTrack]] = field(default_factory=dict)
    recovery: str = "idle"
    blocker: str | None = None  # why recovery cannot act (e.g. a port held by a forbidden PID)
    stopped_at: float | None = None  # wall clock of a stop someone asked systemd for
    started_at: float | None = None  # monotonic: the current process's start (for the grace)
    hold: Hold | None = None
    bound_stop: bool = False  # systemd stopped it with a unit it is bound to (not a person)
    flap: FlapTrack = field(default_factory=lambda: FlapTrack(FlapRule()))


def judge(target: TargetState, mono: float) -> tuple[Status, str]:
    """The status and words of `target` now (`mono`: the monotonic clock, for the grace)."""
    unit = target.unit
    if target.spec.unit is None:  # a host target: its probes are all there is
        said = [t.settled.output for _k, t in target.probes.values() if t.settled]
        status, output = Status.PASS, "; ".join(said) or "no probe has run yet"
    elif unit is None:
        return target.status, target.output
    elif target.stopped_at is not None and not intent.started(unit):
        return Status.WARN, f"stopped on request at {local_clock(target.stopped_at)}"
    else:
        status, output = intent.on_request(unit) or unit_verdict(unit)
    if status is not Status.PASS:
        return status, output
    # The worst settled probe level decides; a warning never hides a failure.
    failing = _words(target, Status.FAIL)
    if failing:
        return Status.FAIL, failing
    begun = starting(target, mono)
    if begun is not None:
        waiting = "; ".join(
            t.last.output for _k, t in target.probes.values() if t.grace_until and t.last
        )
        return Status.WARN, begun + (f": {waiting}" if waiting else "")
    for level in (Status.WARN, Status.UNKNOWN):
        words = _words(target, level)
        if words:
            return level, words
    return Status.PASS, output


def starting(target: TargetState, mono: float) -> str | None:
    """`starting (12 s of 60 s grace)` while a probe of a new process has not passed."""
    graces = [t.grace_s for _k, t in target.probes.values() if t.in_grace(mono)]
    if not graces or target.started_at is None:
        return None
    return f"starting ({mono - target.started_at:.0f} s of {max(graces):g} s grace)"


def _words(target: TargetState, level: Status) -> str:
    return "; ".join(
        t.settled.output for _k, t in target.probes.values() if t.level is level and t.settled
    )
