"""The checks on the circuit breaker: a pause on host CPU only when the run itself measured the
host that busy, and a breaker alert only for a breaker-open period its /health showed. Pure."""

from __future__ import annotations

import html
import statistics
from dataclasses import dataclass

from devtools.chaos.alerts import Alert, read
from devtools.chaos.record import HealthSample, Record
from devtools.chaos.verdict.parts import Check, clock
from supervisor.alerts.policy import SELF
from supervisor.config import BreakerConfig

OPEN = "breaker open: "
INF = float("inf")
# The run keeps the breaker at its defaults: it trips on host CPU over this, held this long.
DEFAULTS = BreakerConfig()


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


def host_pauses(record: Record) -> Check:
    """A pause on host CPU: the run's own host CPU samples (read each second, the way the
    supervisor reads it) over the breaker's sustain time before /health first said it was
    open must average at or over its trip threshold; else the pause was false."""
    trip, sustain = DEFAULTS.trip_cpu_percent, DEFAULTS.sustain_s
    host = [p for p in periods(record) if p.reason.startswith("host CPU")]
    problems = []
    for p in host:
        seen = [cpu for at, cpu in record.host_cpu if p.first - sustain < at <= p.first]
        if not seen:
            problems.append(f"{clock(p.first)}: {p.reason}, and the run measured nothing before")
        elif statistics.fmean(seen) < trip:
            problems.append(
                f"{clock(p.first)}: breaker open on {p.reason}; the run measured the host at "
                f"{statistics.fmean(seen):.0f}% (at most {max(seen):.0f}%) over the "
                f"{sustain:g} s before"
            )
    detail = f"{len(host)} pauses on host CPU (trips over {trip:g}% for {sustain:g} s)"
    return Check(
        "breaker paused on host CPU only when it was busy", not problems, detail, tuple(problems)
    )


def alerts(record: Record) -> Check:
    """Each breaker alert ("open", its reason) falls in a period /health showed with that
    reason, and each breaker "resolved" where one closed (from the second its stamp names to
    its receipt, against when the period can have opened or closed)."""
    shown = periods(record)
    problems, n = [], 0
    for chat in record.chats:
        for alert in (read(m) for m in record.messages if m.chat_id == chat):
            if alert is None or not _breaker(alert):
                continue
            n += 1
            if not any(_matches(alert, p) for p in shown):
                problems.append(f"chat {chat}: {_words(alert)}, no such breaker period in /health")
    detail = f"{n} breaker alerts, {len(shown)} breaker-open periods in /health"
    return Check("alerts: breaker alerts match /health", not problems, detail, tuple(problems))


def _breaker(alert: Alert) -> bool:
    """The breaker's incident: "open" (why: its reason) and its "resolved" (the supervisor's
    only other notices are "supervisor restarted" and digests)."""
    opens = alert.summary.startswith("open")
    return alert.target == SELF and (opens or alert.severity == "RESOLVED")


def _matches(alert: Alert, p: Period) -> bool:
    if alert.severity == "RESOLVED":
        return alert.decided <= p.until and alert.latest >= p.last
    lines = alert.message.text.splitlines()
    why = next((html.unescape(w[5:]) for w in lines if w.startswith("why: ")), "")
    if why != p.reason:
        return False
    if alert.reminder:  # while it lasts
        return alert.decided <= p.until and alert.latest >= p.first
    return alert.decided <= p.first and alert.latest >= p.after


def _words(alert: Alert) -> str:
    return f"{alert.severity} {alert.summary!r} at {clock(alert.decided)}"
