"""The checks of a chaos run, from its `Record` alone. Pure: the same record, the same verdict.

Modules: `parts` (`Check`, `Verdict` and the rest of what the report prints), `recovery`,
`alerting`, `breaker`, `serving`, `usage` and `outputs` (the checks, by what they look at).
"""

from __future__ import annotations

from devtools.chaos.plan import SPECS, Kind
from devtools.chaos.record import Fault, Record
from devtools.chaos.verdict import alerting, breaker, outputs, recovery, serving, usage
from devtools.chaos.verdict.parts import Check, Footprint, KindRow, Verdict

__all__ = ["Check", "Footprint", "KindRow", "Verdict", "judge"]


def judge(record: Record) -> Verdict:
    """Every check, and the figures the table shows."""
    v = Verdict(kinds=_kinds(record))
    injected = [f for f in record.faults if f.start is not None]
    v.checks.append(recovery.injected(record))
    v.checks.append(recovery.detected(injected))
    v.checks.append(recovery.repaired(injected))
    v.checks.append(recovery.false_restarts(record))
    v.checks.append(recovery.give_ups(record))
    v.checks += alerting.checks(record)
    v.checks.append(serving.answered(record))
    v.checks.append(serving.health(record, v))
    v.checks.append(serving.watchdog(record))
    v.checks.append(usage.footprint(record, v))
    v.checks.append(serving.own_cpu(record))
    v.checks.append(breaker.host_pauses(record))
    v.checks.append(breaker.host_memory_pauses(record))
    v.checks.append(outputs.state_file(record))
    v.checks.append(outputs.log(record))
    v.checks.append(outputs.run(record))
    return v


def _kinds(record: Record) -> list[KindRow]:
    rows = []
    for kind, spec in SPECS.items():
        faults = [f for f in record.faults if f.kind is kind]
        if not faults:
            continue
        done = [f for f in faults if f.start is not None]
        detected = [f for f in done if f.detected is not None]
        repaired = [f for f in done if f.repaired is not None]
        rows.append(
            KindRow(
                kind,
                len(done),
                len(faults) - len(done),
                f"{len(detected)}/{len(done)}" if spec.detect else "-",
                f"{len(repaired)}/{len(done)}" if spec.repair else "-",
                [f.detected - f.start for f in detected if f.start is not None and f.detected],
                [_repair_time(f) for f in repaired],
            )
        )
    return rows


def _repair_time(fault: Fault) -> float:
    """From the start, or from when its held cause was taken away (nothing to repair before)."""
    assert fault.start is not None and fault.repaired is not None
    held = fault.plan.hold_s > 0 or fault.kind is Kind.TELEGRAM_429
    since = fault.lifted if held and fault.lifted is not None else fault.start
    return max(0.0, fault.repaired - since)
