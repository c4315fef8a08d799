"""What the fake Bot API received, held against the ground truth: one alert and one resolved
notice per incident, none lost, none duplicated, none without a fault. Pure."""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field

from devtools.chaos.due import alert_due, blind, unrepaired_until
from devtools.chaos.record import Fault, Message, Record

# The stamp in an alert has whole seconds (cut, not rounded): the supervisor decided within
# the second after it, and before the fake Bot API received the message. That interval, not
# an allowance around it, is what is held against a fault's start and end.
STAMP_S = 1.0
_HEAD = re.compile(r"^\S+ <b>(?P<severity>[A-Z]+)</b> (?P<target>\S+) on \S+: (?P<summary>.*)$")
_STAMP = re.compile(r"<i>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC</i>")


@dataclass(frozen=True)
class Alert:
    """A received message, read."""

    message: Message
    severity: str  # WARNING, CRITICAL, RESOLVED, INFO
    target: str
    summary: str
    decided: float  # the stamp the supervisor wrote (whole seconds)
    reminder: bool

    @property
    def latest(self) -> float:
        """The latest moment it can have been decided: its stamp's second, or its receipt."""
        return min(self.decided + STAMP_S, self.message.at)

    @property
    def flapping(self) -> bool:
        """An alert of a flapping incident: its opening, or its "stable again"."""
        return self.summary.startswith(("flapping", "stable again"))

    @property
    def opens(self) -> bool:
        """A first notice of a failing target (not a reminder, not an escalation)."""
        return (
            self.severity in ("WARNING", "CRITICAL")
            and not self.reminder
            and "escalated" not in self.summary
        )


@dataclass(frozen=True)
class Incident:
    """An alert and its resolved notice (None: never resolved), in one chat."""

    chat: int
    target: str
    opened: Alert
    resolved: Alert | None


def read(message: Message) -> Alert | None:
    """Parse one message; None for anything that is not an alert (a command reply)."""
    lines = message.text.splitlines()
    head = _HEAD.match(lines[0]) if lines else None
    stamp = _STAMP.search(message.text)
    if head is None or stamp is None:
        return None
    decided = calendar.timegm(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S"))
    return Alert(
        message,
        head["severity"],
        head["target"],
        head["summary"],
        float(decided),
        "still failing since" in message.text,
    )


@dataclass
class AlertFindings:
    """Each list holds one line per problem; empty lists pass."""

    incidents: list[Incident]
    per_incident: list[str]  # not exactly one alert and one resolved notice
    lost: list[str]
    duplicated: list[str]
    false: list[str]  # an alert with no fault, a resolved notice while the fault lasted
    restart_notices: dict[int, int]  # chat -> "supervisor restarted" notices received
    # Sent again by a life whose state file still held them though Telegram had them: the
    # one repeat at-least-once delivery allows after a SIGKILL (shown, not failed).
    repeated: list[str] = field(default_factory=list)


def judge_alerts(record: Record) -> AlertFindings:
    """Every check on alerts, over every chat."""
    found = AlertFindings([], [], [], [], [], {})
    by_chat = {chat: [m for m in record.messages if m.chat_id == chat] for chat in record.chats}
    for chat, messages in by_chat.items():
        alerts = [a for a in map(read, messages) if a is not None]
        _duplicates(chat, [a.message for a in alerts], record, found)
        alerts = _first_copies(alerts)  # a second copy is judged above, not as an alert
        for target in sorted({a.target for a in alerts if a.target != "supervisor"}):
            mine = [a for a in alerts if a.target == target]
            # Flapping is an incident of its own beside the failure (one "flapping" alert, one
            # "stable again"), and a give-up while flapping is still told: two sequences.
            _sequence(chat, target, [a for a in mine if not a.flapping], record, found)
            _sequence(chat, target, [a for a in mine if a.flapping], record, found)
        _supervisor(chat, [a for a in alerts if a.target == "supervisor"], found)
    _chats_agree(by_chat, found)
    _every_due_alerted(record, found)
    found.false += _false_alerts(found.incidents, record)
    return found


def _duplicates(chat: int, messages: list[Message], record: Record, found: AlertFindings) -> None:
    """A message received twice is a duplicate, unless the second copy is the one repeat that
    at-least-once delivery allows: a life spawned after Telegram had the message started from
    a state file that still held it undelivered (its last life was killed before it could
    write that the message went out; Telegram takes no key to drop a repeat)."""
    received: dict[str, list[float]] = {}
    for message in messages:
        received.setdefault(message.text, []).append(message.at)
    for text, times in received.items():
        if len(times) < 2:
            continue
        again = [
            life
            for life in record.lives
            if (chat, text) in {(c, t) for c, t in life.inherited} and min(times) < life.spawned
        ]
        head = text.splitlines()[0]
        if len(times) - 1 > len(again):
            found.duplicated.append(f"chat {chat}: received {len(times)} times: {head}")
            continue
        for life in again:
            found.repeated.append(
                f"chat {chat}: {head} again from life {life.n}, whose state file still held it"
            )


def _first_copies(alerts: list[Alert]) -> list[Alert]:
    seen: set[str] = set()
    first = []
    for alert in alerts:
        if alert.message.text not in seen:
            seen.add(alert.message.text)
            first.append(alert)
    return first


def _sequence(
    chat: int, target: str, alerts: list[Alert], record: Record, found: AlertFindings
) -> None:
    """failing (reminders, escalation) resolved, failing ... resolved: nothing else."""
    opened: Alert | None = None
    for alert in alerts:
        where = f"chat {chat}, {target}"
        if alert.severity == "RESOLVED":
            if opened is None:
                found.lost.append(f"{where}: resolved at {_t(alert)} with no alert before it")
            else:
                found.incidents.append(Incident(chat, target, opened, alert))
            opened = None
        elif alert.opens:
            if opened is not None:
                found.duplicated.append(
                    f"{where}: a second alert at {_t(alert)} while the incident opened at "
                    f"{_t(opened)} was not resolved"
                )
                continue
            opened = alert
        elif opened is None:
            found.per_incident.append(
                f"{where}: {alert.summary!r} at {_t(alert)} outside any incident"
            )
        elif alert.reminder and alert.decided - opened.decided < record.alert_cooldown_s:
            found.duplicated.append(f"{where}: a reminder at {_t(alert)} before the cooldown")
    if opened is not None:
        found.incidents.append(Incident(chat, target, opened, None))
        what = "flapping incident" if opened.flapping else "incident"
        found.per_incident.append(
            f"chat {chat}, {target}: the {what} of {_t(opened)} never resolved"
        )


def _supervisor(chat: int, alerts: list[Alert], found: AlertFindings) -> None:
    """Counted here; its breaker alerts and digests are judged by `verdict.breaker` and
    `verdict.alerting`."""
    restarts = [a for a in alerts if a.summary.startswith("supervisor restarted")]
    found.restart_notices[chat] = len(restarts)


def _chats_agree(by_chat: dict[int, list[Message]], found: AlertFindings) -> None:
    """Every alert goes to every chat (replies to a command go only where it came from); a
    second copy in one chat is judged by `_duplicates`, not here."""
    texts = {chat: {m.text for m in got if read(m) is not None} for chat, got in by_chat.items()}
    chats = sorted(texts)
    for chat in chats[1:]:
        for text in sorted(texts[chats[0]] - texts[chat]):
            found.lost.append(f"chat {chat} never got: {text.splitlines()[0]}")
        for text in sorted(texts[chat] - texts[chats[0]]):
            found.lost.append(f"chat {chats[0]} never got: {text.splitlines()[0]}")


def _every_due_alerted(record: Record, found: AlertFindings) -> None:
    """A fault during which an incident was due by the run's own ground truth (`due`) must
    have one open in every chat."""
    blinds = blind(record)
    for fault in record.faults:
        if fault.start is None or fault.target is None:
            continue
        due = alert_due(record, fault, blinds)
        if due is None:
            continue
        for chat in record.chats:
            if not any(
                i.chat == chat and i.target == fault.target and _open_during(i, fault)
                for i in found.incidents
            ):
                found.lost.append(
                    f"chat {chat}: no alert for fault {fault.plan.n} ({fault.kind} "
                    f"{fault.target} at {_clock(fault.start)}), due since {_clock(due.at)} "
                    f"({due.why})"
                )


def _open_during(incident: Incident, fault: Fault) -> bool:
    """The incident was open at some moment of the fault (one opened by an earlier fault and
    not yet resolved covers it: the policy sends no second alert for an open incident)."""
    assert fault.start is not None
    end = fault.ended if fault.ended is not None else float("inf")
    closed = incident.resolved.latest if incident.resolved else float("inf")
    return incident.opened.decided <= end and closed >= fault.start


def _belongs(alert: Alert, fault: Fault) -> bool:
    assert fault.start is not None
    end = fault.ended if fault.ended is not None else float("inf")
    return alert.decided <= end and alert.latest >= fault.start


def _false_alerts(incidents: list[Incident], record: Record) -> list[str]:
    problems = []
    for incident in incidents:
        mine = [f for f in record.faults if f.target == incident.target and f.start is not None]
        cause = [f for f in mine if _belongs(incident.opened, f)]
        if not cause:
            problems.append(
                f"chat {incident.chat}, {incident.target}: alert at {_t(incident.opened)} "
                "with no fault of that target under way"
            )
        resolved = incident.resolved
        if resolved is None:
            continue
        # A fault that began after the incident opened and was not noticed yet is not what
        # the notice is about: the target did pass then, and it gets its own incident.
        known = [
            f
            for f in mine
            if f in cause or (f.detected is not None and f.detected < resolved.decided)
        ]
        lasting = [f for f in known if _unrepaired_at(record, f, resolved)]
        for fault in lasting:
            problems.append(
                f"chat {incident.chat}, {incident.target}: resolved at {_t(resolved)} while fault "
                f"{fault.plan.n} ({fault.kind}) was not yet repaired"
            )
    return problems


def _unrepaired_at(record: Record, fault: Fault, notice: Alert) -> bool:
    """True if `fault` had surely started and was surely not repaired, by the run's ground
    truth (`due.unrepaired_until`), at every moment `notice` can have been decided."""
    assert fault.start is not None
    until = unrepaired_until(record, fault)
    return until is not None and fault.start < notice.decided and notice.latest <= until


def _t(alert: Alert) -> str:
    return _clock(alert.decided)


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))
