"""The destinations of typed events: history, metrics, the journal, the alert policy, the
breaker's sense of whether failures are being handled.

Each is a function from an event to what its destination wants, subscribed to the one
dispatcher by `build`. A producer (the recovery executor, the breaker) never names them; a
new destination is one more function here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from supervisor.alerts.policy import SELF
from supervisor.api.metrics import Metrics
from supervisor.guard.activity import Activity
from supervisor.happenings import (
    AlertDelivery,
    AlertQueued,
    AlertsDisabled,
    Blocked,
    BreakerChanged,
    BusConnected,
    BusLost,
    ChatCommand,
    CureRan,
    CureStarting,
    Happening,
    HoldEnded,
    HoldSet,
    ManualRestart,
    Outcome,
    PortFreed,
    PortRefused,
    RecoveryFinished,
    RecoveryGaveUp,
    RecoveryReset,
    RecoveryStarted,
    Step,
    UnitChanged,
    UnitDied,
)
from supervisor.history.events import EventSink, Kind
from supervisor.model import UnitState

# What recovery did keeps the logger name it always had: journal filters and the chaos run
# read it by that name.
log = logging.getLogger("supervisor.recovery.executor")
# Likewise a death and a hold keep the loggers of the modules that used to log them.
death_log = logging.getLogger("supervisor.watch.autopsy")
hold_log = logging.getLogger("supervisor.app.holding")

BREAKER_CLOSED = "breaker closed: host load back under the resume thresholds"
Record = tuple[Kind, str, str | None, dict[str, Any]]


def _where(target: str, attempt: int, most: int) -> str:
    return f"{target} (attempt {attempt}/{most})"


def history_record(event: Happening) -> Record | None:
    """What history keeps of an event: kind, words, target and details (None: nothing)."""
    return _recovery_record(event) or _other_record(event) or _target_record(event)


def _recovery_record(event: Happening) -> Record | None:
    match event:
        case RecoveryStarted(target, repair, attempt, most, reason, dry_run=False):
            words = f"{repair.label} {_where(target, attempt, most)}: {reason}"
            data = {"action": repair.label, "attempt": attempt, "maxAttempts": most}
            return Kind.RECOVERY, words, target, data
        case RecoveryFinished(target=target, repair=repair, attempt=attempt):
            words = f"{repair.label} {_where(target, attempt, event.max_attempts)}: {event.result}"
            data = {"action": repair.label, "result": event.result, "attempt": attempt}
            return Kind.RECOVERY, words, target, data
        case RecoveryGaveUp(target, _unit, reason, next_try):
            words = f"gave up on {target}: {reason}; next try {next_try}"
            return Kind.RECOVERY, words, target, {"action": "give-up", "reason": reason}
        case RecoveryReset(target):
            words = f"recovery of {target} reset by request"
            return Kind.RECOVERY, words, target, {"action": "reset"}
        case ManualRestart(target, _unit, None):
            return Kind.RECOVERY, f"restart {target} on request", target, {"action": "manual"}
        case ManualRestart(target):
            words = f"restart {target} on request: {event.result}"
            return Kind.RECOVERY, words, target, {"action": "manual", "result": event.result}
        case PortFreed(target, port, holder, pid, cmdline, user, outcome):
            words = f"freed port {port} for {target}: {holder}: {outcome}"
            data = {"action": "free-port", "pid": pid, "cmdline": cmdline, "user": user}
            return Kind.RECOVERY, words, target, data | {"result": outcome}
        case PortRefused(target, port, rule):
            words = f"refused to free port {port} for {target}: {rule}"
            data = {"action": "free-port", "result": "refused", "rule": rule}
            return Kind.RECOVERY, words, target, data
    return None


def _other_record(event: Happening) -> Record | None:
    match event:
        case AlertQueued(
            target, severity, summary, reminder, reason, recovery, cause, lines, waited
        ):
            again = " (reminder)" if reminder else ""
            words = f"alert {severity}{again}: {target} {summary}" + (f": {cause}" if cause else "")
            data = {"severity": severity, "reminder": reminder, "reason": reason}
            data |= {"recovery": recovery}
            if lines is not None:
                data |= {"cause": cause, "log": list(lines)}
            if waited is not None:  # what waiting for the cause cost this alert
                data |= {"causeWaitS": round(waited, 4)}
            return Kind.ALERT, words, target, data
        case AlertsDisabled(why):
            return Kind.ALERT, f"alerts disabled: {why}", None, {}
        case AlertDelivery(chat_id, "delivered"):
            return Kind.ALERT, f"alert delivered to chat {chat_id}", None, {"result": "delivered"}
        case AlertDelivery(chat_id, "failed", attempts, error):
            words = f"alert delivery to chat {chat_id} failed (attempt {attempts}): {error}"
            return Kind.ALERT, words, None, {"result": "failed"}
        case AlertDelivery(_chat, "refused", _attempts, error):
            return Kind.ALERT, f"alert refused by Telegram: {error}", None, {"result": "refused"}
        case ChatCommand(command, args, user_id, sender, chat_id):
            words = f"/{' '.join([command, *args])} from user {user_id} ({sender or 'unknown'})"
            data = {"command": command, "chat": chat_id, "sender": sender}
            return Kind.CHAT, f"{words} in chat {chat_id}", None, data
        case BreakerChanged(is_open, _trips, description, _reason):
            return Kind.BREAKER, description if is_open else BREAKER_CLOSED, None, {"open": is_open}
        case BusConnected():
            return Kind.BUS, "connected to the user bus", None, {}
        case BusLost(reason):
            return Kind.BUS, f"lost the user bus: {reason}", None, {"reason": reason}
    return None


def _target_record(event: Happening) -> Record | None:
    """A target blocked or freed, dead, held or let go."""
    match event:
        case Blocked(target, by, root):
            return Kind.STATUS, blocked_words(event), target, {"blockedBy": by, "root": root}
        case UnitDied(target, _unit, words, details):
            return Kind.UNIT, f"{target} died: {words}", target, dict(details)
        case HoldSet(target, until, by, _reason, words):
            return Kind.HOLD, words, target, {"action": "set", "until": until, "by": by}
        case HoldEnded(target, by, expired):
            data = {"action": "expired" if expired else "released", "by": by}
            return Kind.HOLD, f"hold on {target} {hold_ended(event)}", target, data
    return None


def hold_ended(event: HoldEnded) -> str:
    """`expired` / `released by cli:alice`."""
    return "expired" if event.expired else f"released by {event.by}"


def blocked_words(event: Blocked) -> str:
    """`dashboard blocked by trader` / `dashboard freed: trader is back`."""
    if event.by is not None:
        return f"{event.target} blocked by {event.by}"
    return f"{event.target} freed: {event.root} is back"


def to_history(sink: EventSink) -> Callable[[Happening], None]:
    """Record each event history keeps."""

    def hear(event: Happening) -> None:
        if (found := history_record(event)) is not None:
            kind, words, target, data = found
            sink.record(kind, words, target, **data)

    return hear


def to_unit_history(unit: Callable[[str, UnitState], None]) -> Callable[[Happening], None]:
    """Tell history each unit's move (it records only real ones: failed, a new MainPID...)."""

    def hear(event: Happening) -> None:
        if isinstance(event, UnitChanged):
            unit(event.target, event.state)

    return hear


def to_metrics(metrics: Metrics) -> Callable[[Happening], None]:
    """Count recovery actions and keep the breaker's state."""

    def hear(event: Happening) -> None:
        match event:
            case RecoveryFinished(target=target, repair=repair, outcome=outcome):
                metrics.observe_recovery(target, repair.label, outcome.value)
            case RecoveryGaveUp(target=target):
                metrics.observe_recovery(target, Step.GIVE_UP.value, Outcome.GAVE_UP.value)
            case PortFreed(target=target):
                metrics.observe_recovery(target, Step.FREE_PORT.value, Outcome.KILLED.value)
            case ManualRestart(target=target, outcome=Outcome() as outcome):
                metrics.observe_recovery(target, Step.MANUAL_RESTART.value, outcome.value)
            case BreakerChanged(open=is_open, trips=trips):
                metrics.observe_breaker(is_open, trips)

    return hear


def to_journal(event: Happening) -> None:
    """Log what recovery does (naming the target and the action), blocks, deaths and holds."""
    match event:
        case Blocked():
            log.warning("%s", blocked_words(event))
        case UnitDied(target, unit, words):
            death_log.warning("%s (%s) died: %s", target, unit, words)
        case HoldSet(words=words):
            hold_log.warning("%s", words)
        case HoldEnded(target):
            hold_log.warning("hold on %s %s", target, hold_ended(event))
        case _:
            _journal_recovery(event)


def _journal_recovery(event: Happening) -> None:
    match event:
        case RecoveryGaveUp(target, unit, reason, next_try):
            log.error("giving up on %s (%s): %s; next try %s", target, unit, reason, next_try)
        case RecoveryReset(target):
            log.warning("recovery state of %s reset by request", target)
        case ManualRestart(target, unit, None):
            log.warning("restarting %s (%s) on request", target, unit)
        case RecoveryStarted(target, repair, attempt, most, reason, dry_run=True):
            where = _where(target, attempt, most)
            log.warning("dry run: would %s %s: %s", repair.label, where, reason)
        case CureStarting(target, attempt, most, reason):
            log.warning("running the cure for %s: %s", _where(target, attempt, most), reason)
        case CureRan(target, program, Outcome.CANNOT_RUN, _code, why):
            log.error("cannot run %s for %s: %s", program, target, why)
        case CureRan(target, program, outcome, _code, said):
            level = logging.INFO if outcome is Outcome.DONE else logging.ERROR
            log.log(
                level, "ran %s for %s: %s; output: %s", program, target, event.result, said or "-"
            )
        case RecoveryStarted(target, repair, attempt, most, reason):
            log.warning("%s %s: %s", repair.label, _where(target, attempt, most), reason)
        case RecoveryFinished(target=target, repair=repair, outcome=outcome) if event.job_ran:
            level = logging.INFO if outcome is Outcome.DONE else logging.ERROR
            log.log(level, "%s %s: job %s", repair.label, target, event.result)
        case RecoveryFinished(target=target, repair=repair, outcome=Outcome.BUS_ERROR):
            log.error("%s %s failed: %s", repair.label, target, event.error)
        case PortFreed(target, port, holder, _pid, _cmdline, _user, outcome):
            log.warning("freed port %d for %s: %s: %s", port, target, holder, outcome)
        case PortRefused(target, port, rule):
            log.error("not freeing port %d for %s: %s", port, target, rule)


def action_note(event: Happening) -> tuple[str, str] | None:
    """What recovery did, in the words a resolved alert tells (target, words), or None."""
    match event:
        case RecoveryFinished(target=target, repair=repair, outcome=Outcome.DONE) if event.job_ran:
            freed = Step.FREE_PORT in repair.steps
            return target, "port freed and restarted" if freed else "restarted"
        case CureRan(target=target, program=program, outcome=outcome) if (
            outcome is not Outcome.CANNOT_RUN
        ):
            return target, f"ran {PurePath(program).name}: {event.result}"
        case ManualRestart(target=target, outcome=Outcome.DONE):
            return target, "restarted on request"
    return None


def to_alert_notes(note: Callable[[str, str], None]) -> Callable[[Happening], None]:
    """Tell the alert policy what recovery did (the resolved notice says it)."""

    def hear(event: Happening) -> None:
        if (found := action_note(event)) is not None:
            note(*found)

    return hear


# Handling a failure: a recovery step, a cure, a port freed or refused, an alert about a target.
HANDLING = (
    CureStarting,
    RecoveryStarted,
    RecoveryFinished,
    RecoveryGaveUp,
    ManualRestart,
    CureRan,
    PortFreed,
    PortRefused,
    AlertQueued,
)


def to_activity(activity: Activity) -> Callable[[Happening], None]:
    """Mark the time of each failure handled: the breaker does not count that CPU as overhead."""

    def mark(event: Happening) -> None:
        # The supervisor's own alerts (its breaker, its restarts) are not a target's failure.
        if isinstance(event, HANDLING) and getattr(event, "target", None) != SELF:
            activity.mark()

    return mark
