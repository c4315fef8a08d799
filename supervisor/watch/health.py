"""The health model: pure state per target, fed observations, read as snapshots.

No I/O here and no reading of the clock except through the injected one, so every
transition is tested without an event loop or sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from supervisor.model import Clock, Hold, ProbeResult, Snapshot, Status, TargetHealth, UnitState
from supervisor.watch import deps, intent
from supervisor.watch.intent import FlapRule, FlapTrack
from supervisor.watch.track import ProbeTrack
from supervisor.watch.units import unit_verdict
from supervisor.watch.verdict import TargetSpec, TargetState, judge, starting

__all__ = ["HealthModel", "Notes", "ProbeTrack", "TargetSpec", "overall", "unit_verdict"]


def overall(targets: Iterable[TargetHealth], notes: Iterable[str] = ()) -> Status:
    """fail if a critical target fails; warn if anything else is off; else pass."""
    worst = Status.WARN if any(True for _ in notes) else Status.PASS
    for t in targets:
        if t.status is Status.FAIL and t.critical:
            return Status.FAIL
        if t.status is not Status.PASS:
            worst = Status.WARN
    return worst


class Notes:
    """Fleet-level degradations by key ("bus", "breaker", "alerts", "http", "history").

    They are the daemon's, not one fleet's: one `Notes` outlives every reload, so the parts
    that write a note hold it (or one `writer`) and never need the fleet in force.
    """

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self.version = 0  # counts changes: a model's cached snapshot is stale when it moves

    def set(self, key: str, text: str | None) -> None:
        """Set or clear one degradation."""
        if text is None:
            if self._texts.pop(key, None) is not None:
                self.version += 1
        elif self._texts.get(key) != text:
            self._texts[key] = text
            self.version += 1

    def writer(self, key: str) -> Callable[[str | None], None]:
        """Set or clear the note under `key` (for a part that writes one note)."""
        return partial(self.set, key)

    def texts(self) -> tuple[str, ...]:
        """Every note in force, oldest key first."""
        return tuple(self._texts.values())

    def carry_over(self, previous: Notes) -> None:
        """Keep `previous`'s notes (a no-op when both are the same `Notes`)."""
        for key, text in previous._texts.items():
            self.set(key, text)


class HealthModel:
    """Per-target health, updated from unit states and probe results."""

    def __init__(
        self,
        targets: Iterable[TargetSpec],
        clock: Clock,
        flap: FlapRule | None = None,
        notes: Notes | None = None,  # the daemon's, shared by every fleet it builds
    ) -> None:
        self._clock = clock
        now = clock.time()
        rule = flap or FlapRule()
        self._targets = {
            s.name: TargetState(spec=s, since=now, flap=FlapTrack(rule)) for s in targets
        }
        for target in self._targets.values():
            if target.spec.unit is None:
                target.output = "waiting for the first probe"
        self._by_unit = {t.spec.unit: t for t in self._targets.values() if t.spec.unit}
        self.notes = notes if notes is not None else Notes()
        self._notes_seen = -1  # the notes' version the cached snapshot shows
        self.relations = deps.Relations(clock)
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
        states = {n: t.unit for n, t in self._targets.items()}
        now = self._clock.time()
        unit, target.bound_stop = self.relations.through_bound(
            name, unit, target.bound_stop, states, now
        )
        target.unit = unit
        states[name] = unit
        self.relations.read(previous, unit, states)
        if previous is not None and previous.main_pid != unit.main_pid:
            # A new process deserves a clean slate: old failures were about the old one,
            # and its probes get the start-up grace before their failures count.
            mono = self._clock.monotonic()
            target.started_at = mono if unit.main_pid else None
            for _kind, track in target.probes.values():
                track.reset()
                if unit.main_pid:
                    track.start_grace(mono)
        if intent.stopped_on_request(unit):
            target.stopped_at = target.stopped_at or self._clock.time()
        elif intent.started(unit):
            target.stopped_at = None
        return self._evaluate(target)

    def apply_probe(self, result: ProbeResult) -> bool:
        """Count a probe result; True if the target's status changed."""
        target = self._targets[result.target]
        _kind, track = target.probes[result.probe]
        track.record(result, self._clock.monotonic())
        return self._evaluate(target)

    def tick(self) -> float | None:
        """Apply what time alone changes (graces ending, flapping settling, holds ending).

        Returns the seconds until the next such moment, so the caller can wake then.
        """
        mono, wall = self._clock.monotonic(), self._clock.time()
        soonest: list[float] = []
        for target in self._targets.values():
            expired = [track.expire(mono) for _k, track in target.probes.values()]
            settled = target.flap.settle(target.status is Status.PASS, wall)
            if any(expired) or settled:
                self._evaluate(target)
            elif starting(target, mono) is not None:
                self._evaluate(target)  # the words say how long it has been starting
            ends = [t.grace_until - mono for _k, t in target.probes.values() if t.grace_until]
            quiet = target.flap.quiet_at()
            if quiet is not None and quiet > wall:  # past it, only a pass (an update) ends it
                ends.append(quiet - wall)
            if target.hold is not None:
                ends.append(target.hold.until - wall)
            soonest.extend(max(0.0, e) for e in ends)
        return min(soonest) if soonest else None

    # -- holds ------------------------------------------------------------------------------

    def set_hold(self, name: str, hold: Hold) -> None:
        """Hold a target: its probes run and show; recovery and alerts leave it alone."""
        self._targets[name].hold = hold
        self._changed()

    def release(self, name: str) -> Hold | None:
        """End a hold; the target starts over with fresh counts. Returns the hold ended."""
        target = self._targets[name]
        hold, target.hold = target.hold, None
        if hold is not None:
            # Fresh counts: a target that still fails is judged from now, not from before.
            target.since = self._clock.time()
            target.consecutive_failures = 0
            self._changed()
        return hold

    def expired_holds(self) -> list[tuple[str, Hold]]:
        """Holds whose time is up (not yet released)."""
        now = self._clock.time()
        return [
            (name, t.hold)
            for name, t in self._targets.items()
            if t.hold is not None and t.hold.until <= now
        ]

    def holds(self) -> dict[str, Hold]:
        """Every hold in force."""
        return {name: t.hold for name, t in self._targets.items() if t.hold is not None}

    def export(self) -> dict[str, Any]:
        """What a restart of the supervisor must not forget: holds, stops on request, flapping."""
        return {
            "holds": {
                name: {"until": h.until, "reason": h.reason, "by": h.by, "since": h.since}
                for name, h in self.holds().items()
            },
            "stopped": {n: t.stopped_at for n, t in self._targets.items() if t.stopped_at},
            "flapping": {n: f for n, t in self._targets.items() if (f := t.flap.export())},
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Take back what `export()` gave (targets no longer configured are dropped)."""
        for name, raw in data.get("holds", {}).items():
            if name in self._targets and isinstance(raw, dict):
                try:
                    self._targets[name].hold = Hold(**raw)
                except TypeError:
                    continue
        for name, at in data.get("stopped", {}).items():
            if name in self._targets and isinstance(at, int | float):
                self._targets[name].stopped_at = float(at)
        for name, flap in data.get("flapping", {}).items():
            if name in self._targets:
                self._targets[name].flap.restore(flap)
        self._changed()

    # -- notes, recovery words, reload ------------------------------------------------------

    def set_note(self, key: str, text: str | None) -> None:
        """Set or clear a fleet-level degradation (e.g. "bus", "breaker"): see `Notes`."""
        self.notes.set(key, text)

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
        "resolved"); so do holds, stops on request, the start time and recent failures.
        Probe tracks are carried by the caller, per unchanged probe.
        """
        self.notes.carry_over(previous.notes)
        self.relations.carry_over(previous.relations)
        # Versions keep counting: a cached rendering of the old model is never reused.
        self._version = previous._version
        for name, target in self._targets.items():
            old = previous._targets.get(name)
            if old is None:
                continue
            target.hold = old.hold
            if old.spec.unit != target.spec.unit:
                continue
            target.status, target.output, target.since = old.status, old.output, old.since
            target.consecutive_failures = old.consecutive_failures
            target.last_success, target.unit = old.last_success, old.unit
            target.recovery, target.blocker = old.recovery, old.blocker
            target.stopped_at, target.started_at = old.stopped_at, old.started_at
            target.bound_stop = old.bound_stop
            old.flap.rule = target.flap.rule
            target.flap = old.flap
        self._changed()

    def target(self, name: str) -> TargetHealth:
        """One target as it stands now."""
        found = self.snapshot().target(name)
        if found is None:
            raise KeyError(name)
        return found

    def snapshot(self) -> Snapshot:
        """The current picture; rebuilt only after something changed."""
        if self._snapshot is None or self._notes_seen != self.notes.version:
            targets = self.relations.apply(self._view(t) for t in self._targets.values())
            notes, self._notes_seen = self.notes.texts(), self.notes.version
            self._snapshot = Snapshot(
                # Both only grow, so the sum moves whenever the picture does.
                version=self._version + self._notes_seen,
                time=self._clock.time(),
                status=overall(targets, notes),
                targets=targets,
                notes=notes,
            )
        return self._snapshot

    def _evaluate(self, target: TargetState) -> bool:
        status, output = judge(target, self._clock.monotonic())
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

    def _set_status(self, target: TargetState, status: Status, output: str) -> bool:
        target.output = output
        if status is target.status:
            return False
        if status is Status.FAIL and target.hold is None:
            target.flap.failed(self._clock.time())
        elif status is Status.PASS:
            target.flap.passed()
        target.status = status
        target.since = self._clock.time()
        return True

    def _view(self, target: TargetState) -> TargetHealth:
        mono = self._clock.monotonic()
        begun = None
        if starting(target, mono) is not None and target.started_at is not None:
            grace = max(t.grace_s for _k, t in target.probes.values() if t.in_grace(mono))
            begun = (mono - target.started_at, grace)
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
            recovery=_recovery_words(target),
            stopped_at=target.stopped_at,
            starting=begun,
            hold=target.hold,
            flapping=target.flap.flapping,
        )

    def _changed(self) -> None:
        self._version += 1
        self._snapshot = None


def _recovery_words(target: TargetState) -> str:
    """What recovery is doing, and that the target is flapping (so the page and table say)."""
    flap = target.flap.flapping
    if flap is None:
        return target.recovery
    return f"{target.recovery}; flapping: {flap.count} failures in {flap.span_s:.0f} s"
