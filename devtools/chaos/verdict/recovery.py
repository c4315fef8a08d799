"""The checks on recovery: every fault detected and repaired, no restart without a fault, and
recovery tried before it gives up. Pure."""

from __future__ import annotations

import re

from devtools.chaos.plan import SPECS
from devtools.chaos.record import Fault, Record
from devtools.chaos.verdict.parts import Check, clock

RESTART_SLACK_S = 1.0  # a restart this long after a fault ended still belongs to it
SKIP_CAP = 0.05  # at most this share of the planned faults may be skipped
_GIVE_UP = re.compile(r"giving up on (?P<target>\S+) \(.*?\): (?P<n>\d+) attempts")


def _name(fault: Fault) -> str:
    return f"fault {fault.plan.n} {fault.kind}{' ' + fault.target if fault.target else ''}"


def injected(record: Record) -> Check:
    """Every kind the plan holds was injected at least once, and few faults were skipped.

    A skipped fault is dropped from every other check, so a run that skipped what was hard
    (a target never free, a fault that could not be made) would otherwise pass untested.
    """
    planned = record.faults
    skipped = [f for f in planned if f.start is None]
    kinds = {f.kind for f in planned}
    done = {f.kind for f in planned if f.start is not None}
    problems = [f"{kind}: planned, never injected" for kind in sorted(kinds - done)]
    cap = int(len(planned) * SKIP_CAP)
    if len(skipped) > cap:
        problems.append(f"{len(skipped)} of {len(planned)} faults skipped (at most {cap}: 5 %)")
    if problems:
        problems += [f"{_name(f)} skipped: {f.skipped or 'never started'}" for f in skipped]
    detail = f"{len(done)}/{len(kinds)} kinds, {len(skipped)}/{len(planned)} skipped"
    return Check("every kind injected, skips <= 5 %", not problems, detail, tuple(problems))


def detected(faults: list[Fault]) -> Check:
    missed = [_name(f) for f in faults if SPECS[f.kind].detect and f.detected is None]
    asked = sum(1 for f in faults if SPECS[f.kind].detect)
    return Check(
        "every fault detected", not missed, f"{asked - len(missed)}/{asked}", tuple(missed)
    )


def repaired(faults: list[Fault]) -> Check:
    missed = [
        f"{_name(f)}: {'; '.join(f.notes) or 'not repaired'}"
        for f in faults
        if SPECS[f.kind].repair and f.repaired is None
    ]
    asked = sum(1 for f in faults if SPECS[f.kind].repair)
    return Check(
        "every fault repaired", not missed, f"{asked - len(missed)}/{asked}", tuple(missed)
    )


def false_restarts(record: Record) -> Check:
    """A unit restarted (new main process, or a recovery action) with no fault on it."""
    problems = []
    for inc in record.incarnations:
        if inc.started < record.began or (record.finished and inc.started > record.finished):
            continue
        if not any(
            f.target == inc.target and f.active(inc.started, RESTART_SLACK_S) for f in record.faults
        ):
            problems.append(f"{inc.target}: new main process {inc.pid} at {clock(inc.started)}")
    for act in record.actions:
        if act.action == "give-up":
            continue
        if not any(
            _overlaps(f, act.since, act.at) for f in record.faults if f.target == act.target
        ):
            problems.append(
                f"{act.target}: {act.action} ({act.result}) between {clock(act.since)} "
                f"and {clock(act.at)}"
            )
    systemd = {t: n for t, n in record.n_restarts.items() if n}
    if systemd:
        problems.append(f"systemd restarted units by itself (NRestarts): {systemd}")
    return Check("false restarts: 0", not problems, str(len(problems)), tuple(problems))


def give_ups(record: Record) -> Check:
    """Recovery gives up only after max_attempts, or after its slow retry of the same fault.

    A give-up after fewer attempts, first in a fault, means the policy was still in its
    slow-retry mode from an earlier incident: the unit was left down without a try.
    """
    events = [e for e in record.log if e.what == "give-up"]
    problems = []
    for event in events:
        found = _GIVE_UP.search(event.line)
        if found is None or int(found["n"]) >= record.max_attempts:
            continue
        target = found["target"]
        fault = next((f for f in record.faults if f.target == target and f.active(event.at)), None)
        if fault is None or fault.start is None:
            continue
        start = fault.start
        earlier = [e for e in events if f"on {target} " in e.line and start <= e.at < event.at]
        if not earlier:
            problems.append(
                f"{target}: gave up after {found['n']} attempt(s) at {clock(event.at)}, the "
                f"first try at fault {fault.plan.n} ({fault.kind}, {clock(start)})"
            )
    detail = f"{len(events)} give-ups"
    return Check("recovery tried before giving up", not problems, detail, tuple(problems))


def _overlaps(fault: Fault, since: float, at: float) -> bool:
    if fault.start is None:
        return False
    end = fault.ended if fault.ended is not None else float("inf")
    return fault.start - RESTART_SLACK_S <= at and since <= end + RESTART_SLACK_S
