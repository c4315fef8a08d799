"""What the alert policy decides about: incidents, alerts and their severity, and the words
of a Telegram message. Pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from supervisor.alerts.text import LIMIT, bounded, clip, escape_html, units
from supervisor.times import utc_stamp


class Severity(StrEnum):
    """How loud an alert is."""

    INFO = "info"
    NOTICE = "notice"  # a target in warn (only with on_warn): below any failure
    WARNING = "warning"
    CRITICAL = "critical"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    """One message for a person."""

    key: str
    target: str
    severity: Severity
    summary: str
    reason: str = ""
    recovery: str = ""
    at: float = 0.0  # wall clock
    opened_at: float = 0.0
    reminder: bool = False
    actions: tuple[str, ...] = ()
    # A root cause's dependants: their names when it opens, how each came back when resolved.
    dependants: tuple[str, ...] = ()


@dataclass(slots=True)
class Incident:
    """An open problem with one target (or the breaker)."""

    key: str
    target: str
    opened_at: float
    severity: str = Severity.WARNING.value
    notified_at: float | None = None
    notified_severity: str | None = None
    reason: str = ""
    actions: list[str] = field(default_factory=list)
    # The targets that need this one (blocked while it is down): name -> how it came back
    # ("" while not known yet); and when this one was first seen back (wall clock).
    dependants: dict[str, str] = field(default_factory=dict)
    back_at: float | None = None

    def awaiting(self, now: float, wait_s: float) -> bool:
        """Its dependants are not all accounted for yet (waited for at most `wait_s` after
        it came back: `[dependencies] resolved_wait_s`)."""
        if not any(not how for how in self.dependants.values()):
            return False
        return self.back_at is None or now - self.back_at < wait_s

    def dependants_words(self) -> tuple[str, ...]:
        """`dashboard back at 12:00:03 UTC`, one per dependant."""
        return tuple(f"{name} {how or 'not back yet'}" for name, how in self.dependants.items())


_ICON = {
    Severity.INFO: "🔵",
    Severity.NOTICE: "🟡",
    Severity.WARNING: "⚠️",
    Severity.CRITICAL: "🔴",
    Severity.RESOLVED: "✅",
}


_REASON_UNITS = 1024  # a probe's output can be long; the message must stay readable
_RECOVERY_UNITS = 256


def format_html(alert: Alert, host: str) -> str:
    """A short Telegram message (HTML parse mode, everything escaped), within Telegram's limit.

    A digest lists what it held one per line, as many as fit, then "… and N more".
    """
    e = escape_html
    head = (
        f"{_ICON[alert.severity]} <b>{e(alert.severity.value.upper())}</b> "
        f"{clip(alert.target, 128)} on {clip(host, 128)}: {clip(alert.summary, 256)}"
    )
    lines = [head]
    if alert.reason:
        lines.append(f"why: {clip(alert.reason, _REASON_UNITS)}")
    if alert.dependants:
        label = "dependants: " if alert.severity is Severity.RESOLVED else "dependants affected: "
        lines.append(label + clip("; ".join(alert.dependants), _REASON_UNITS))
    if alert.recovery:
        lines.append(f"recovery: {clip(alert.recovery, _RECOVERY_UNITS)}")
    tail = [f"still failing since {e(utc_stamp(alert.opened_at))}"] if alert.reminder else []
    tail.append(f"<i>{e(utc_stamp(alert.at))}</i>")
    if alert.actions:
        digest = alert.key == "digest"
        label = "" if digest else "done: "
        room = LIMIT - units("\n".join([*lines, *tail])) - units("\n" + label)
        lines.append(label + bounded(alert.actions, room, "\n" if digest else "; "))
    return "\n".join([*lines, *tail])


def alert_dict(alert: Alert) -> dict[str, Any]:
    """An alert as JSON-able data (for the state file)."""
    data = asdict(alert)
    data["actions"] = list(alert.actions)
    return data


def alert_from(raw: dict[str, Any]) -> Alert:
    """An alert from `alert_dict`'s data (one saved before a field existed gets its default)."""
    return Alert(
        **{
            **raw,
            "severity": Severity(raw["severity"]),
            "actions": tuple(raw.get("actions", ())),
            "dependants": tuple(raw.get("dependants", ())),
        }
    )
