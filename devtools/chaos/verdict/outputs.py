"""The checks on what was written: the state file keeps up with the outbox, no traceback in the
supervisor's log, no error in the run itself. Pure."""

from __future__ import annotations

import itertools

from devtools.chaos.record import Record
from devtools.chaos.verdict.parts import Check, clock

STATE_LAG_SAMPLES = 10  # seconds the state file may lag /metrics (the writer coalesces)


def state_file(record: Record) -> Check:
    """The state file must keep up with the outbox: what it still lists as waiting after
    delivery is sent again by the next life after a kill (a duplicate)."""
    problems, behind = [], 0
    for before, sample in itertools.pairwise(record.proc):
        same = before.life == sample.life and None not in (sample.waiting, sample.waiting_in_file)
        behind = behind + 1 if same and sample.waiting != sample.waiting_in_file else 0
        if behind == STATE_LAG_SAMPLES:
            problems.append(
                f"life {sample.life} from {clock(sample.at - STATE_LAG_SAMPLES)}: the file lists "
                f"{sample.waiting_in_file} waiting, /metrics says {sample.waiting}"
            )
    return Check(
        "state file keeps up with the outbox", not problems, str(len(problems)), tuple(problems)
    )


def log(record: Record) -> Check:
    tracebacks = [e for e in record.log if e.what == "traceback"]
    return Check("no traceback in the supervisor's log", not tracebacks, str(len(tracebacks)))


def run(record: Record) -> Check:
    return Check(
        "the run itself: no errors",
        not record.errors,
        str(len(record.errors)),
        tuple(record.errors),
    )
