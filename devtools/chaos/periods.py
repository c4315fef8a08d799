"""The breaker's open periods, as the supervisor's /health showed them (each request's time).
Pure. The verdict judges each against the host load the run measured itself
(`verdict.breaker`), and the supervisor cannot probe while one lasts (`devtools.chaos.due`)."""

from __future__ import annotations

from dataclasses import dataclass

from devtools.chaos.record import HealthSample, Record

OPEN = "breaker open: "
INF = float("inf")


@dataclass(frozen=True)
class Period:
    """The breaker open in one life, as /health showed it: `first` to `last` said so; it
    opened after `after` (the last answer before that did not say so) and closed before
    `until` (the first answer after that did not; the life's end or the run's end)."""

    life: int
    reason: str  # "host CPU 93% > 90%", as the breaker words it
    after: float
    first: float
    last: float
    until: float


def periods(record: Record) -> list[Period]:
    """Every breaker-open period in the run's /health samples (an unanswered request neither
    opens nor closes one; a new life starts closed, and a period its life ended in may be
    resolved by a later life: its `until` is then open-ended)."""
    found: list[Period] = []
    answered = [s for s in record.health if s.latency_s is not None and s.statuses]
    for life in sorted({s.life for s in answered}):
        mine = [s for s in answered if s.life == life]
        run: list[HealthSample] = []
        for i, sample in enumerate(mine):
            if OPEN in sample.notes:
                run.append(sample)
                continue
            if run:
                found.append(
                    _period(run, mine[i - len(run) - 1] if i > len(run) else None, sample.at)
                )
                run = []
        if run:
            found.append(_period(run, mine[-len(run) - 1] if len(mine) > len(run) else None, INF))
    return found


def _period(run: list[HealthSample], before: HealthSample | None, until: float) -> Period:
    first = run[0]
    after = before.at if before is not None else first.at
    return Period(first.life, _reason(first), after, first.at, run[-1].at, until)


def _reason(sample: HealthSample) -> str:
    note = next(n for n in sample.notes.split("; ") if n.startswith(OPEN))
    return note.removeprefix(OPEN)
