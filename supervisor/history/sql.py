"""The history file's schema and queries, as text and plain values. Pure: the store runs them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from supervisor.history.events import Event, EventQuery, Kind
from supervisor.history.uptime import Span

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,  -- microseconds since the epoch
    kind TEXT NOT NULL, target TEXT, summary TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_target ON events (target, id);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, id);
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY, target TEXT NOT NULL, status TEXT NOT NULL,
    start REAL NOT NULL, end REAL NOT NULL, reason TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS spans_by_target ON spans (target, end);
"""
SPANS = "SELECT status, start, end, reason FROM spans WHERE target = ? AND end >= ? ORDER BY start"


def events_query(q: EventQuery) -> tuple[str, tuple[Any, ...]]:
    """The SELECT for a page of events, newest first, and its arguments."""
    where, args = ["1"], []
    for clause, value in (
        ("target = ?", q.target),
        ("kind = ?", q.kind),
        ("id >= ?", None if q.since is None else int(q.since * 1_000_000)),
        ("id < ?", None if q.until is None else int(q.until * 1_000_000)),
        ("id < ?", q.before),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = (
        f"SELECT id, kind, target, summary, data FROM events WHERE {' AND '.join(where)} "
        "ORDER BY id DESC LIMIT ?"
    )
    return sql, (*args, q.limit)


def event_row(event: Event) -> tuple[Any, ...]:
    """An event as the row the INSERT takes."""
    data = json.dumps(event.data, separators=(",", ":"), default=str)
    return (event.id, event.kind.value, event.target, event.summary, data)


def events_from(rows: Sequence[tuple[Any, ...]]) -> list[Event]:
    """Rows of `events_query` as events (kinds this version does not know are skipped)."""
    known = Kind._value2member_map_
    return [Event(r[0], Kind(r[1]), r[3], r[2], json.loads(r[4])) for r in rows if r[1] in known]


def live_spans(
    rows: Sequence[tuple[Any, ...]], live: tuple[str, float] | None, now: float
) -> list[Span]:
    """Rows of `SPANS`, with the status the loop knows now winning from its start on.

    The writer may lag a little behind the loop: the stored spans are clipped at the live
    status's start, and the live status runs to `now`.
    """
    spans = [Span(r[0], r[1], r[2], r[3]) for r in rows]
    if live is None:
        return spans
    status, at = live
    clipped = [Span(s.status, s.start, min(s.end, at), s.reason) for s in spans]
    reason = next((s.reason for s in reversed(spans) if s.start == at), "")
    return [s for s in clipped if s.end > s.start] + [Span(status, at, now, reason)]
