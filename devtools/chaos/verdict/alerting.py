"""The checks on alerts: one alert and one resolved notice per incident, none lost, duplicated
or false, and one 'supervisor restarted' notice per kill (judged by `devtools.chaos.alerts`);
breaker alerts against /health (`verdict.breaker`), digests against what the run did."""

from __future__ import annotations

import html
import re

from devtools.chaos.alerts import judge_alerts, read
from devtools.chaos.periods import Period, periods
from devtools.chaos.record import Record
from devtools.chaos.verdict import breaker
from devtools.chaos.verdict.parts import Check, clock
from supervisor.alerts.policy import SELF

DIGEST = "held back by the rate limit"
_HELD = re.compile(r"^(?P<target>[^:\s]+): (?P<severity>[a-z]+) (?P<summary>.*)$")


def checks(record: Record) -> list[Check]:
    found = judge_alerts(record)
    n = sum(1 for i in found.incidents if i.chat == record.chats[0]) if record.chats else 0
    kills = len(record.lives) - 1  # every life but the last ended without a clean stop
    wrong = {c: k for c, k in found.restart_notices.items() if k != kills}
    notices = [
        f"chat {c}: {k} 'supervisor restarted' notices for {kills} kills" for c, k in wrong.items()
    ]
    return [
        Check(
            "alerts: one alert + one resolved per incident",
            not found.per_incident,
            f"{n} incidents",
            tuple(found.per_incident),
        ),
        Check("alerts: none lost", not found.lost, str(len(found.lost)), tuple(found.lost)),
        Check(
            "alerts: none duplicated",
            not found.duplicated,
            f"{len(found.duplicated)}; {len(found.repeated)} sent again after a kill by the "
            "life whose state file still held them",
            (*found.duplicated, *found.repeated),
        ),
        Check(
            "alerts: none false",
            not found.false,
            str(len(found.false)),
            tuple(found.false),
        ),
        Check(
            "alerts: one 'supervisor restarted' per kill",
            not notices,
            f"{kills} kills",
            tuple(notices),
        ),
        breaker.alerts(record),
        digests(record),
    ]


def digests(record: Record) -> Check:
    """A digest names only what the run saw happen before it was decided: each alert it held
    names a target with a fault injected by then, or, for the supervisor itself, its breaker
    open in /health or a restart by the run ("... and N more" names nothing)."""
    shown = periods(record)
    problems, n = [], 0
    for chat in record.chats:
        for alert in (read(m) for m in record.messages if m.chat_id == chat):
            if alert is None or alert.target != SELF or not alert.summary.endswith(DIGEST):
                continue
            n += 1
            for line in alert.message.text.splitlines()[1:-1]:
                held = _HELD.match(html.unescape(line))
                if held and not _saw(record, shown, held["target"], held["summary"], alert.latest):
                    problems.append(
                        f"chat {chat}: the digest of {clock(alert.decided)} names {line!r}, "
                        "which the run never caused"
                    )
    return Check(
        "alerts: digests name only what happened", not problems, f"{n} digests", tuple(problems)
    )


def _saw(record: Record, shown: list[Period], target: str, summary: str, by: float) -> bool:
    if target != SELF:
        return any(
            f.target == target and f.start is not None and f.start <= by for f in record.faults
        )
    if summary.startswith("supervisor restarted"):
        return any(life.n > 1 and life.spawned <= by for life in record.lives)
    return any(p.first <= by for p in shown)
