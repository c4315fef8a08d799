"""The recorder: what history keeps of the supervisor's life, and what the API reads of it.

It is one destination of the dispatcher's typed events (`app/subscribers.py` makes each a
`record`, and a unit's change a `unit` move, kept only when real: failed, a new MainPID): no
part that acts names it. The composition layer also shows it directly each pass's snapshot,
kept as status changes (`observe`); each probe result, kept in the ring (`probe`); a hang's
evidence, carried by the failure event that follows (`failure_cause`); and the supervisor's
start, reload and stop. It keeps the last `RECENT` events in memory (for when the store is
off or unavailable), hands them to the store, and tells its listeners (the event stream) at
once. Everything on the supervision side is O(1) and never blocks: the store writes in its
own thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from supervisor import __version__
from supervisor.history import events, report
from supervisor.history.events import Event, EventClock, EventQuery, HistoryUnavailableError, Kind
from supervisor.history.ring import ProbeRing
from supervisor.history.store import HistoryStore
from supervisor.history.uptime import DAY_S, WINDOWS, Span
from supervisor.model import Clock, ProbeResult, Snapshot, Status, UnitState

log = logging.getLogger(__name__)
# Events kept in memory: one page of /events (its default limit) with history off or
# unavailable. 500 held ~0.5 MB more and took the soak's 40 minutes to fill (20 events a
# minute): a rise a leak hunt could not tell from a leak.
RECENT = 100
CAUSE_S = 10.0  # a failure's cause told this long before its `fail` event is still its own
_OFF = "history is turned off ([history] enabled = false)"


class Recorder:
    """Records events and status spans; answers the API (an `EventSink` and `HistorySource`)."""

    def __init__(
        self,
        store: HistoryStore | None,
        clock: Clock,
        targets: list[str],  # a reload hands the new list (`use`)
        on_note: Callable[[str | None], None] = lambda _text: None,
    ) -> None:
        self._store = store
        self._on_note = on_note  # "history unavailable: why" for /health, or None
        self._clock = clock
        self._targets = targets
        self._ids = EventClock(clock)
        self._recent: deque[Event] = deque(maxlen=RECENT)
        self._listeners: list[Callable[[Event], None]] = []
        self._statuses: dict[str, Status] = {}
        self._units: dict[str, UnitState] = {}
        self._causes: dict[str, tuple[float, dict[str, Any]]] = {}  # for the next failure event
        self.ring = ProbeRing()

    def use(self, targets: list[str]) -> None:
        """Answer for these targets from now on (a reload's new list)."""
        self._targets = targets

    def start(self) -> None:
        """Open the store (in its own thread); call it on the event loop."""
        if self._store is not None:
            loop = asyncio.get_running_loop()

            def from_writer(why: str | None) -> None:  # the writer thread: hop to the loop
                loop.call_soon_threadsafe(self._store_state, why)

            self._store.on_state = from_writer
            self._store.start()

    def _store_state(self, why: str | None) -> None:
        """The store became unavailable or came back: a note in /health and an event."""
        text = None if why is None else f"history unavailable: {why}"
        self._on_note(text)
        self.record(Kind.HISTORY, text or "history available again", available=why is None)

    def close(self) -> None:
        """End the status spans now and write what is queued (clean stop)."""
        if self._store is not None:
            self._store.close(self._clock.time())
        self._statuses.clear()

    # -- what happened -----------------------------------------------------------------------

    def record(self, kind: Kind, summary: str, target: str | None = None, **data: Any) -> None:
        """Note one event."""
        self._emit(events.note(self._ids, kind, summary, target, **data))

    def observe(self, snap: Snapshot) -> None:
        """Record every target whose status changed since the last look."""
        for t in snap.targets:
            before = self._statuses.get(t.name)
            if before is t.status:
                continue
            self._statuses[t.name] = t.status
            if before is None and t.status is Status.UNKNOWN:
                continue  # "waiting for the first read": nothing has happened yet
            extra = self._cause_of(t.name) if t.status is Status.FAIL else {}
            self._emit(events.status_changed(self._ids, t, before, **extra))
            if self._store is not None:
                self._store.status(t.name, t.status.value, t.output, t.since)

    def unit(self, name: str, state: UnitState) -> None:
        """Record a unit's move (active/running -> failed, a new MainPID, ...)."""
        before = self._units.get(name)  # as last recorded
        if events.unit_moved(before, state):
            self._units[name] = state
            # The unit moved (it died, or restarted): a failure from here has its own story,
            # never the evidence of a probe that failed before it.
            self._causes.pop(name, None)
            self._emit(events.unit_changed(self._ids, name, before, state))

    def failure_cause(self, target: str, cause: dict[str, Any], log: dict[str, Any]) -> None:
        """Why the target's probe is failing beyond its output (a hang's evidence): carried
        by the target's next `fail` event, if that comes within CAUSE_S."""
        self._causes[target] = (self._clock.time(), {"cause": cause, "log": log})

    def _cause_of(self, target: str) -> dict[str, Any]:
        at, extra = self._causes.pop(target, (0.0, {}))
        return extra if self._clock.time() - at <= CAUSE_S else {}

    def probe(self, result: ProbeResult) -> None:
        """Keep a probe result in the ring."""
        self.ring.add(result, self._clock.time())

    def started(self, unclean: bool) -> None:
        """The supervisor started (after a clean stop or not)."""
        how = "after an unclean stop" if unclean else "cleanly"
        self.record(Kind.SUPERVISOR, f"supervisor {__version__} started ({how})", unclean=unclean)

    def stopped(self, exit_code: int) -> None:
        """The supervisor is stopping."""
        self.record(Kind.SUPERVISOR, f"supervisor stopped (exit {exit_code})", exitCode=exit_code)

    def reloaded(self, targets: list[str]) -> None:
        """A reload put a new target list in force: forget the others' rings."""
        keep = set(targets)
        self.ring.keep_only(keep)
        for name in [n for n in self._units if n not in keep]:
            del self._units[name]
        self.record(Kind.SUPERVISOR, f"reloaded: watching {len(targets)} targets")

    def _emit(self, event: Event) -> None:
        self._recent.append(event)
        if self._store is not None:
            self._store.add(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener's trouble must never reach supervision
                log.exception("history listener failed on %s", event.kind.value)

    # -- the API's side ----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while the store's file is open for writing."""
        return self._store is not None and self._store.ready

    @property
    def unavailable(self) -> str | None:
        """Why the store cannot be used now, or None."""
        return _OFF if self._store is None else self._store.unavailable

    @property
    def version(self) -> object:
        """The last event and how far the store has written (a page cache's key)."""
        last = self._recent[-1].id if self._recent else 0
        store = self._store
        return (last, store.written if store else 0, store.unavailable if store else None)

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Hear every new event; returns how to stop."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def events(self, query: EventQuery) -> tuple[list[Event], bool]:
        """From the store; from memory (the last `RECENT`) while it is off or unavailable."""
        if self._store is not None and self._store.unavailable is None:
            try:
                return self._store.events(query), True
            except HistoryUnavailableError:
                pass
        found = [e for e in reversed(self._recent) if query.matches(e)]
        return found[: query.limit], False

    def target(self, name: str) -> dict[str, Any] | None:
        """/history/{target}."""
        if name not in self._targets:
            return None
        now = self._clock.time()
        spans, why = self._spans(name, now - WINDOWS["30d"], now)
        deaths = self._deaths(name, now - WINDOWS["30d"])
        doc = report.target_document(
            name, spans, self.ring.recent(name), now, name in self._statuses, deaths=deaths
        )
        if why is not None:
            doc["unavailable"] = why
        return doc

    def summary(self) -> dict[str, Any]:
        """Every target for the status page."""
        now = self._clock.time()
        targets: dict[str, Any] = {}
        for name in self._targets:
            spans, _why = self._spans(name, now - 7 * DAY_S, now)
            last = self.ring.last_at(name)
            deaths = self._deaths(name, now - 7 * DAY_S)
            targets[name] = report.summary_entry(
                name, spans, last, now, name in self._statuses, deaths=deaths
            )
        return {"unavailable": self.unavailable, "targets": targets}

    def _deaths(self, name: str, since: float) -> list[report.DeathNote]:
        """The target's failures with a cause (deaths, hangs: events that carry one)."""
        found: list[Event] = []
        for kind in (Kind.UNIT, Kind.STATUS):
            found += self.events(EventQuery(target=name, kind=kind.value, since=since))[0]
        return [
            report.DeathNote(e.time, str(e.data["cause"]["words"]), tuple(e.data["log"]["lines"]))
            for e in found
            if isinstance(e.data.get("cause"), dict) and isinstance(e.data.get("log"), dict)
        ]

    def _spans(self, name: str, since: float, now: float) -> tuple[list[Span], str | None]:
        if self._store is None:
            return [], _OFF
        try:
            return self._store.spans(name, since, now), None
        except HistoryUnavailableError as exc:
            return [], str(exc)
