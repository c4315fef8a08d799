"""The checks on alerts: one alert and one resolved notice per incident, none lost, duplicated
or false, and one 'supervisor restarted' notice per kill (judged by `devtools.chaos.alerts`)."""

from __future__ import annotations

from devtools.chaos.alerts import judge_alerts
from devtools.chaos.record import Record
from devtools.chaos.verdict.parts import Check


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
            str(len(found.duplicated)),
            tuple(found.duplicated),
        ),
        Check(
            "alerts: none false",
            not found.false,
            str(len(found.false)),
            tuple(found.false + found.other),
        ),
        Check(
            "alerts: one 'supervisor restarted' per kill",
            not notices,
            f"{kills} kills",
            tuple(notices),
        ),
    ]
