"""When an alert was due, and until when a fault was surely not repaired, from ground truth the
run keeps itself. Pure: nothing here reads the supervisor's own counters of failures.

The ground truth: the fault log (when the run injected each fault, which process it hit, when
it took the cause away), systemd's view of the units as the run polled it (`Record.units`:
ExecMainPID and when it started), the supervisor's lives as the run spawned and killed them,
and the breaker-open periods (each held against the host load the run measured itself, by
`verdict.breaker`). The messages the fake Bot API received are judged against it in
`devtools.chaos.alerts`.

An alert is due for a fault of a target when either

- **recovery must have given up**: while the run held the fault's cause (a crash loop: every
  start exits at once), systemd started the target's main process `max_attempts` times within
  recovery's window less one round, and the cause was still held a round after the last start,
  the supervisor able to act throughout. None of those starts could help, so recovery's budget
  was spent and the next failure was a give-up, which opens an incident at once; or
- **the target was down too long**: it was surely not repaired (`unrepaired_until`) for
  `due_after_s` without a break while the supervisor was able to act: a probe sees any fault
  of the run within the probe allowance, and `failure_threshold` failed rounds (one more for
  the pass that decides) open an incident. A restart in between does not reset this: a target
  restarted into the same fault fails again, which makes it flap (its own alert) or spends
  recovery's budget (a give-up).

The supervisor is able to act while one of its lives is ready and has not exited, no fault of
its own scope that blinds it (a reexec, a bus or supervisor kill) is under way and no
breaker-open period pauses its probes. A reload does not blind it: it keeps what it knew of
every target whose unit is unchanged (status, failures, recovery's attempts), and the run's
reloads change no unit.
"""

from __future__ import annotations

from dataclasses import dataclass

from devtools.chaos.periods import periods
from devtools.chaos.plan import Kind
from devtools.chaos.record import Fault, Record

INF = float("inf")
SAME_START_S = 0.5  # one start read in two polls: the clocks' offset moves by microseconds
Span = tuple[float, float]
BLINDING = (Kind.REEXEC, Kind.BUS_KILL, Kind.SUPERVISOR_KILL)  # the supervisor's own faults


@dataclass(frozen=True)
class Due:
    """An alert due from `at` on, and why."""

    at: float
    why: str


def due_after_s(record: Record) -> float:
    """How long a target surely down makes an alert due: the probe allowance, and the
    threshold's failed rounds with one more for the pass that decides."""
    return record.probe_allowance_s + (record.alert_threshold + 1) * record.round_s


def unrepaired_until(record: Record, fault: Fault) -> float | None:
    """The last moment `fault` was surely not repaired (None: no moment is sure).

    Its cause held (a crash loop, until the run lifted it), or the process it hit still
    systemd's ExecMainPID when the run polled: no main process was started since the fault
    began, so the target was still that hung, stopped or dead process.
    """
    assert fault.start is not None
    until: float | None = None
    if fault.plan.hold_s > 0:
        until = _held_until(record, fault)
    if fault.victim:
        polls = sorted(
            (u for u in record.units if u.target == fault.target and u.at >= fault.start),
            key=lambda u: u.at,
        )
        for poll in polls:
            if poll.exec_pid != fault.victim:
                break
            until = max(until or poll.at, poll.at)
    return until


def starts(record: Record, target: str, after: float, until: float) -> list[float]:
    """When systemd started a main process of `target` in (after, until], by the run's polls
    (each start is a new ExecMainPID with its start time, seen in every poll until the next
    start; NRestarts counts only systemd's own restarts, which the sandbox's Restart=no rules
    out)."""
    found: dict[int, list[float]] = {}
    for u in sorted(record.units, key=lambda x: x.exec_started):
        if u.target != target or not u.exec_pid or not after < u.exec_started <= until:
            continue
        mine = found.setdefault(u.exec_pid, [])
        # The same start in the next poll (its time turned to wall time again); a PID used
        # again later is another start.
        if not mine or u.exec_started - mine[-1] > SAME_START_S:
            mine.append(u.exec_started)
    return sorted(at for pid_starts in found.values() for at in pid_starts)


def blind(record: Record) -> list[Span]:
    """When the supervisor was not able to act (see the module's doc)."""
    spans: list[Span] = []
    end = -INF  # the previous life's exit
    for life in sorted(record.lives, key=lambda x: x.n):
        if life.ready is None:
            continue  # never ready: blind from the last exit until a later life is
        spans.append((end, life.ready))
        end = life.exited if life.exited is not None else INF
    spans.append((end, INF))
    for f in record.faults:
        if f.start is not None and f.kind in BLINDING:
            spans.append((f.start, f.ended if f.ended is not None else INF))
    spans += [(p.after, p.until) for p in periods(record)]
    return spans


def clear(lo: float, hi: float, blinds: list[Span]) -> list[Span]:
    """The parts of [lo, hi] outside every span of `blinds`."""
    pieces = [(lo, hi)] if hi > lo else []
    for b0, b1 in blinds:
        rest = []
        for a0, a1 in pieces:
            if b1 <= a0 or b0 >= a1:
                rest.append((a0, a1))
                continue
            if a0 < b0:
                rest.append((a0, b0))
            if b1 < a1:
                rest.append((b1, a1))
        pieces = rest
    return pieces


def alert_due(record: Record, fault: Fault, blinds: list[Span] | None = None) -> Due | None:
    """When, during `fault`, an incident of its target was surely due (None: never);
    `blinds` is `blind(record)`, when the caller has it already."""
    assert fault.start is not None and fault.target is not None
    blinds = blind(record) if blinds is None else blinds
    gave_up = _gave_up(record, fault, blinds)
    if gave_up is not None:
        return gave_up
    until = unrepaired_until(record, fault)
    if until is None:
        return None
    need = due_after_s(record)
    for lo, hi in clear(fault.start, until, blinds):
        if hi - lo >= need:
            return Due(
                lo + need, f"down {hi - lo:.1f} s by systemd and the fault log, {need:g} s due"
            )
    return None


def _held_until(record: Record, fault: Fault) -> float:
    if fault.lifted is not None:
        return fault.lifted
    return fault.ended if fault.ended is not None else record.finished


def _gave_up(record: Record, fault: Fault, blinds: list[Span]) -> Due | None:
    if fault.plan.hold_s <= 0:
        return None
    assert fault.start is not None and fault.target is not None
    held = _held_until(record, fault)
    seen = starts(record, fault.target, fault.start, held)
    n, window = record.max_attempts, record.recovery_window_s - record.round_s
    for i in range(len(seen) - n + 1):
        first, last = seen[i], seen[i + n - 1]
        decided = last + record.round_s
        if (
            last - first <= window
            and decided <= held
            and clear(first, decided, blinds) == [(first, decided)]
        ):
            return Due(decided, f"{n} starts in {last - first:.1f} s while the cause was held")
    return None
