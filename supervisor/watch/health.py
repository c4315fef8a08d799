"""The health model: pure state per target, fed observations, read as snapshots.

No I/O here and no reading of the clock except through the injected one, so every
transition is tested without an event loop or sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from supervisor.model import (
    ActiveState,
    Clock,
    ProbeResult,
    ProbeView,
    Snapshot,
    Status,
    TargetHealth,
    UnitState,
)


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What the health model needs to know about a target (taken from its config)."""

    name: str
    unit: str | None  # None: a host target, judged by its probes alone
    critical: bool = False


@dataclass(slots=True)
class ProbeTrack:
    """Kubernetes' threshold semantics for one probe, plus a warning and an unknown level.

    A probe turns failing after `failure_threshold` consecutive failures and passing again
    after `success_threshold` consecutive non-failures; one blip changes nothing. A warning
    answered, so it counts as a non-failure (it never leads to recovery) but shows as warn.
    An unknown result (the check could not tell) counts neither way.
    """

    failure_threshold: int = 3
    success_threshold: int = 1
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    failing: bool = False
    last: ProbeResult | None = None
    level: Status | None = None  # the settled level; None until one is known
    settled: ProbeResult | None = None  # the result that set it (its words explain it)

    def record(self, result: ProbeResult) -> None:
        """Count one result and flip `failing` when a threshold is reached."""
        self.last = result
        status = result.status
        if status is Status.UNKNOWN:
            self.level, self.settled = Status.UNKNOWN, result
            return
        if status is Status.FAIL:
            self.consecutive_failures += 1
            self.consecutive_successes = 0
            if result.stuck:  # proved stuck, not slow: waiting for more failures adds nothing
                self.consecutive_failures = max(self.consecutive_failures, self.failure_threshold)
            if self.consecutive_failures >= self.failure_threshold:
                self.failing = True
        else:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            if self.failing and self.consecutive_successes >= self.success_threshold:
                self.failing = False
        if self.failing or status is not Status.FAIL:
            self.level, self.settled = (Status.FAIL if self.failing else status), result
        # else: an unconfirmed failure keeps the level it had (one blip changes nothing)

    def reset(self) -> None:
        """Forget everything (a new process of the unit)."""
        self.consecutive_failures = self.consecutive_successes = 0
        self.failing = False
        self.last = self.settled = None
        self.level = None

    @property
    def suspect(self) -> bool:
        """Failed at least once but not yet confirmed: re-probe soon (fast confirm)."""
        return not self.failing and self.consecutive_failures > 0

    def view(self, probe: str, kind: str) -> ProbeView:
        """The probe as a snapshot shows it (an unconfirmed failure shows as warn)."""
        last = self.last
        if last is None:
            status, output = Status.UNKNOWN, "not run yet"
        else:
            status = Status.WARN if self.suspect else (self.level or Status.UNKNOWN)
            output = last.output
        return ProbeView(
            probe=probe,
            kind=kind,
            status=status,
            output=output,
            consecutive_failures=self.consecutive_failures,
            observed_value=last.observed_value if last else None,
            observed_unit=last.observed_unit if last else None,
            source=last.source if last else None,
            perfdata=last.perfdata if last else (),
        )


@dataclass(slots=True)
class _Target:
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
    result = f", result {unit.result}" if unit.result and unit.result != "success" else ""
    return Status.FAIL, f"{words}{result}"


def overall(targets: Iterable[TargetHealth], notes: Iterable[str] = ()) -> Status:
    """fail if a critical target fails; warn if anything else is off; else pass."""
    worst = Status.WARN if any(True for _ in notes) else Status.PASS
    for t in targets:
        if t.status is Status.FAIL and t.critical:
            return Status.FAIL
        if t.status is not Status.PASS:
            worst = Status.WARN
    return worst


class HealthModel:
    """Per-target health, updated from unit states and probe results."""

    def __init__(self, targets: Iterable[TargetSpec], clock: Clock) -> None:
        self._clock = clock
        now = clock.time()
        self._targets = {s.name: _Target(spec=s, since=now) for s in targets}
        for target in self._targets.values():
            if target.spec.unit is None:
                target.output = "waiting for the first probe"
        self._by_unit = {t.spec.unit: t for t in self._targets.values() if t.spec.unit}
        self._notes: dict[str, str] = {}
        self._version = 0
        self._snapshot: Snapshot | None = None

    @property
    def names(self) -> list[str]:
        """Target names in config order."""
        return list(self._targets)

    def name_for_unit(self, unit: str) -> str | None:
        """The target that watches `unit`, if any."""
        target = self._by_unit.get(unit)
        return target.spec.name if target else None

    def add_probe(self, name: str, probe: str, kind: str, track: ProbeTrack) -> None:
        """Register a probe so the snapshot lists it before its first run."""
        self._targets[name].probes[probe] = (kind, track)
        self._changed()

    def apply_unit(self, name: str, unit: UnitState) -> bool:
        """Take systemd's latest word on a target's unit; True if the status changed."""
        target = self._targets[name]
        previous = target.unit
        target.unit = unit
        if previous is not None and previous.main_pid != unit.main_pid:
            # A new process deserves a clean slate: old failures were about the old one.
            for _kind, track in target.probes.values():
                track.reset()
        return self._evaluate(target)

    def apply_probe(self, result: ProbeResult) -> bool:
        """Count a probe result; True if the target's status changed."""
        target = self._targets[result.target]
        _kind, track = target.probes[result.probe]
        track.record(result)
        return self._evaluate(target)

    def set_note(self, key: str, text: str | None) -> None:
        """Set or clear a fleet-level degradation (e.g. "bus", "breaker")."""
        if text is None:
            if self._notes.pop(key, None) is not None:
                self._changed()
        elif self._notes.get(key) != text:
            self._notes[key] = text
            self._changed()

    def set_unknown(self, reason: str) -> None:
        """We lost sight of systemd: every target is unknown until re-read."""
        for target in self._targets.values():
            if target.spec.unit is None:
                continue  # a host target does not depend on the bus
            target.unit = None
            self._set_status(target, Status.UNKNOWN, f"unknown: {reason}")
        self._changed()

    def set_recovery(self, name: str, text: str) -> None:
        """Record what recovery is doing for a target, in words."""
        target = self._targets[name]
        if target.recovery != text:
            target.recovery = text
            self._changed()

    def set_blocker(self, name: str, reason: str | None) -> None:
        """Say why recovery cannot fix a target (shown in its output), or clear it."""
        target = self._targets[name]
        if target.blocker != reason:
            target.blocker = reason
            self._evaluate(target)

    def carry_over(self, previous: HealthModel) -> None:
        """After a reload: keep what was known of every target whose unit is unchanged.

        Status, `since`, last success, the unit's state, recovery words and fleet notes
        carry over, so a reload never turns a failing target `pass` (and then falsely
        "resolved"). Probe tracks are carried by the caller, per unchanged probe.
        """
        self._notes.update(previous._notes)
        # Versions keep counting: a cached rendering of the old model is never reused.
        self._version = previous._version
        for name, target in self._targets.items():
            old = previous._targets.get(name)
            if old is None or old.spec.unit != target.spec.unit:
                continue
            target.status, target.output, target.since = old.status, old.output, old.since
            target.consecutive_failures = old.consecutive_failures
            target.last_success, target.unit = old.last_success, old.unit
            target.recovery, target.blocker = old.recovery, old.blocker
        self._changed()

    def target(self, name: str) -> TargetHealth:
        """One target as it stands now."""
        return self._view(self._targets[name])

    def snapshot(self) -> Snapshot:
        """The current picture; rebuilt only after something changed."""
        if self._snapshot is None:
            targets = tuple(self._view(t) for t in self._targets.values())
            notes = tuple(self._notes.values())
            self._snapshot = Snapshot(
                version=self._version,
                time=self._clock.time(),
                status=overall(targets, notes),
                targets=targets,
                notes=notes,
            )
        return self._snapshot

    def _evaluate(self, target: _Target) -> bool:
        status, output = self._judge(target)
        if status is Status.FAIL:
            target.consecutive_failures += 1
        else:
            target.consecutive_failures = 0  # warn and unknown are not failures either
            if status is Status.PASS:
                target.last_success = self._clock.time()
        if target.blocker and status is Status.FAIL:
            output = f"{output}; recovery blocked: {target.blocker}"
        changed = self._set_status(target, status, output)
        self._changed()
        return changed

    @staticmethod
    def _judge(target: _Target) -> tuple[Status, str]:
        unit = target.unit
        if target.spec.unit is None:  # a host target: its probes are all there is
            said = [t.settled.output for _k, t in target.probes.values() if t.settled]
            status, output = Status.PASS, "; ".join(said) or "no probe has run yet"
        elif unit is None:
            return target.status, target.output
        else:
            status, output = unit_verdict(unit)
        if status is not Status.PASS:
            return status, output
        # The worst settled probe level decides; a warning never hides a failure.
        for level in (Status.FAIL, Status.WARN, Status.UNKNOWN):
            words = [
                t.settled.output
                for _k, t in target.probes.values()
                if t.level is level and t.settled
            ]
            if words:
                return level, "; ".join(words)
        return Status.PASS, output

    def _set_status(self, target: _Target, status: Status, output: str) -> bool:
        target.output = output
        if status is target.status:
            return False
        target.status = status
        target.since = self._clock.time()
        return True

    def _view(self, target: _Target) -> TargetHealth:
        return TargetHealth(
            name=target.spec.name,
            unit=target.spec.unit,
            critical=target.spec.critical,
            status=target.status,
            output=target.output,
            since=target.since,
            consecutive_failures=target.consecutive_failures,
            last_success=target.last_success,
            unit_state=target.unit,
            probes=tuple(track.view(p, kind) for p, (kind, track) in target.probes.items()),
            recovery=target.recovery,
        )

    def _changed(self) -> None:
        self._version += 1
        self._snapshot = None
