"""The checks on the circuit breaker: a pause on host CPU or host memory only when the run
itself measured the host that busy or that full (`devtools.chaos.host`, from /proc, not with
the supervisor's code), and a breaker alert only for a breaker-open period its /health showed.
Pure."""

from __future__ import annotations

import html
import statistics

from devtools.chaos.alerts import Alert, read
from devtools.chaos.periods import Period, periods
from devtools.chaos.record import Record
from devtools.chaos.verdict.parts import Check, clock
from supervisor.alerts.policy import SELF
from supervisor.config import BreakerConfig

# The run keeps the breaker at its defaults: it trips on host CPU or memory over these, held
# this long.
DEFAULTS = BreakerConfig()


def host_pauses(record: Record) -> Check:
    """A pause on host CPU: the run's own host CPU samples (read each second from /proc/stat,
    idle and iowait counting as idle, as the supervisor counts them) over the breaker's sustain
    time before /health first said it was open must average at or over its trip threshold;
    else the pause was false."""
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


def host_memory_pauses(record: Record) -> Check:
    """A pause on host memory: the breaker saw memory in use over its trip threshold at the
    sample it opened on, which lies between the last /health that did not say so and the first
    that did (and within its sustain time before that). Memory moves slowly: the run's own
    /proc/meminfo readings (each second) over that span must reach the threshold; else the
    pause was false."""
    trip, sustain = DEFAULTS.trip_memory_percent, DEFAULTS.sustain_s
    host = [p for p in periods(record) if p.reason.startswith("host memory")]
    problems = []
    for p in host:
        since = min(p.after, p.first - sustain)
        seen = [used for at, used in record.host_memory if since <= at <= p.first]
        if not seen:
            problems.append(f"{clock(p.first)}: {p.reason}, and the run measured nothing before")
        elif max(seen) < trip:
            problems.append(
                f"{clock(p.first)}: breaker open on {p.reason}; the run measured the host's "
                f"memory at most {max(seen):.0f}% in use from {clock(since)}"
            )
    detail = f"{len(host)} pauses on host memory (trips over {trip:g}%)"
    return Check(
        "breaker paused on host memory only when it was full", not problems, detail, tuple(problems)
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
