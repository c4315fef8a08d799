"""Events: what happened, when, to whom, in words; built from plain data, no I/O.

An event's id is its time in microseconds since the epoch, made strictly increasing by the
`EventClock`: ids are unique, ordered like time, survive restarts without reading the
database, and page the timeline (`before=<id>`) and resume the stream (`Last-Event-ID`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from supervisor.model import Clock, Status, TargetHealth, UnitState
from supervisor.times import iso


class Kind(StrEnum):
    """What an event is about (the `kind=` filter of /events)."""

    STATUS = "status"  # a target's status changed
    UNIT = "unit"  # its systemd unit changed state
    RECOVERY = "recovery"  # an action and its result
    ALERT = "alert"  # incident opened, escalated, reminded, resolved; delivery
    BREAKER = "breaker"
    BUS = "bus"
    SUPERVISOR = "supervisor"  # started, stopped, reloaded, restarted after an unclean stop
    CHAT = "chat"  # a command from a chat, and who sent it
    HISTORY = "history"  # the store itself became unavailable or came back
    HOLD = "hold"  # a person held a target, released it, or the hold expired


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a person would ask about."""

    id: int  # microseconds since the epoch, strictly increasing
    kind: Kind
    summary: str  # one line in words
    target: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)  # JSON-able details

    @property
    def time(self) -> float:
        """Seconds since the epoch."""
        return self.id / 1_000_000

    def document(self) -> dict[str, Any]:
        """The event as JSON for /events and the stream."""
        return {
            "id": self.id,
            "time": iso(self.time),
            "kind": self.kind.value,
            "target": self.target,
            "summary": self.summary,
            "data": dict(self.data),
        }


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A page of the timeline, newest first."""

    target: str | None = None
    kind: str | None = None
    since: float | None = None  # seconds since the epoch, inclusive
    until: float | None = None  # exclusive
    before: int | None = None  # an event id: the next page starts below it
    limit: int = 100

    def matches(self, event: Event) -> bool:
        """The same filter the store applies, for events held in memory."""
        return (
            (self.target is None or event.target == self.target)
            and (self.kind is None or event.kind.value == self.kind)
            and (self.since is None or event.time >= self.since)
            and (self.until is None or event.time < self.until)
            and (self.before is None or event.id < self.before)
        )


class HistoryUnavailableError(Exception):
    """The store cannot answer now (disk full, locked, corrupt, turned off)."""


class EventClock:
    """Hands out event ids: wall-clock microseconds, never equal, never going back."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = 0

    def next_id(self) -> int:
        """A fresh id for an event happening now."""
        self._last = max(self._last + 1, int(self._clock.time() * 1_000_000))
        return self._last


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: float) -> float:
    """`2h` or `30m` ago, seconds since the epoch, or RFC 3339; ValueError otherwise."""
    text = text.strip()
    if match := _RELATIVE.match(text):
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use 2h, 30m, 7d, epoch seconds or ISO 8601)"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (add Z or +00:00)")
    return parsed.timestamp()


# systemd's ExecMainCode is a CLD_* code; a few signals by name so "signal=KILL" reads well.
_CLD = {1: "status", 2: "signal", 3: "signal"}
_SIGNALS = {1: "HUP", 2: "INT", 6: "ABRT", 9: "KILL", 11: "SEGV", 15: "TERM"}


def exit_words(code: int, status: int) -> str:
    """`status=1`, `signal=KILL` (systemd's words), from ExecMainCode and ExecMainStatus."""
    how = _CLD.get(code, f"code{code}")
    value = _SIGNALS.get(status, str(status)) if how == "signal" else str(status)
    return f"{how}={value}" + (" (core dumped)" if code == 3 else "")


def _unit_words(u: UnitState) -> str:
    return f"{u.active_state.value}/{u.sub_state}" if u.sub_state else u.active_state.value


def status_changed(ids: EventClock, t: TargetHealth, before: Status | None, **cause: Any) -> Event:
    """A target's status moved (from, to, and why in words; a failure's `cause` and `log`)."""
    was = before.value if before is not None else "none"
    return Event(
        ids.next_id(),
        Kind.STATUS,
        f"{t.name} {was} -> {t.status.value}: {t.output}",
        t.name,
        {"from": was, "to": t.status.value, "reason": t.output, **cause},
    )


def unit_changed(ids: EventClock, name: str, before: UnitState | None, after: UnitState) -> Event:
    """The unit's state moved (e.g. active/running -> failed), with Result and exit status."""
    data: dict[str, Any] = {
        "unit": after.unit,
        "from": _unit_words(before) if before else None,
        "to": _unit_words(after),
        "result": after.result,
        "mainPidBefore": before.main_pid if before else None,
        "mainPidAfter": after.main_pid,
        "nRestarts": after.n_restarts,
    }
    if after.exit_code:
        data["exit"] = exit_words(after.exit_code, after.exit_status)
    words = f"{name}: unit {data['from'] or 'seen'} -> {data['to']}"
    if after.result and after.result != "success":
        words += f" (result {after.result}"
        words += f", {data['exit']})" if "exit" in data else ")"
    if before and before.main_pid != after.main_pid:
        words += f", pid {before.main_pid} -> {after.main_pid}"
    return Event(ids.next_id(), Kind.UNIT, words, name, data)


def unit_moved(before: UnitState | None, after: UnitState) -> bool:
    """True when a person would call it a change: the state moved, not just a property.

    systemd sends a unit's properties in pieces (MainPID and Result on the Service
    interface, ActiveState on the Unit interface): compared with the state last recorded,
    the pieces of one move make one event.
    """
    if before is None:
        return True
    return (before.active_state, before.sub_state, before.load_state) != (
        after.active_state,
        after.sub_state,
        after.load_state,
    )


def note(
    ids: EventClock, kind: Kind, summary: str, target: str | None = None, **data: Any
) -> Event:
    """Any other event: an action, an alert, a command."""
    return Event(ids.next_id(), kind, summary, target, data)


class EventSink(Protocol):
    """Where the parts that act report what they did (the history recorder)."""

    def record(self, kind: Kind, summary: str, target: str | None = None, **data: Any) -> None:
        """Note one event; never blocks and never raises."""


class HistorySource(Protocol):
    """What the API reads. The blocking calls run in a worker thread, never on the loop."""

    @property
    def unavailable(self) -> str | None:
        """Why the store cannot be used now, or None."""

    @property
    def version(self) -> object:
        """Changes whenever what `events` would answer may have changed."""

    def events(self, query: EventQuery) -> tuple[list[Event], bool]:
        """A page of events, newest first, and whether it came from the store (else memory)."""

    def target(self, name: str) -> dict[str, Any] | None:
        """/history/{target}: None for a name we do not watch (blocking)."""

    def summary(self) -> dict[str, Any]:
        """Uptime, hourly strip, last probe and incidents of every target (blocking)."""

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Hear every new event at once (on the loop); returns how to stop hearing."""


class Discard:
    """An EventSink that keeps nothing (history turned off, or a part built alone in a test)."""

    def record(self, kind: Kind, summary: str, target: str | None = None, **data: Any) -> None:
        """Drop the event."""
