"""The SQLite history store, on real files: writes off the caller's thread, reads, spans,
retention, and degrading (corrupt, locked, unwritable) then recovering by itself."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.history import events
from supervisor.history.events import EventClock, EventQuery, Kind
from supervisor.history.store import MAX_PENDING, HistoryStore
from tests.clock import FakeClock
from tests.polling import until_blocking


class Stores:
    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "history.sqlite3"
        self.states: list[str | None] = []
        self.opened: list[HistoryStore] = []

    def open(self, **kw: float) -> HistoryStore:
        store = HistoryStore(self.path, retry_s=0.05, on_state=self.states.append, **kw)
        store.start()
        self.opened.append(store)
        return store


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    s = Stores(tmp_path)
    yield s
    for store in s.opened:
        store.close(time.time())


def _events(clock: FakeClock, n: int, target: str = "trader") -> list[events.Event]:
    ids = EventClock(clock)
    out = []
    for i in range(n):
        kind = Kind.RECOVERY if i % 2 else Kind.UNIT
        out.append(events.note(ids, kind, f"event {i}", target, n=i))
        clock.advance(1.0)
    return out


def test_events_come_back_newest_first_filtered_and_paged(stores: Stores) -> None:
    store = stores.open()
    batch = _events(FakeClock(time.time() - 100), 50)
    for ev in batch:
        store.add(ev)
    until_blocking(lambda: store.written == 50, 5, "50 events written")
    page = store.events(EventQuery(limit=20))
    assert [e.summary for e in page] == [f"event {i}" for i in range(49, 29, -1)]
    assert page[0].data == {"n": 49}
    following = store.events(EventQuery(limit=20, before=page[-1].id))
    assert following[0].summary == "event 29"
    recovery = store.events(EventQuery(kind="recovery", limit=100))
    assert len(recovery) == 25 and all(e.kind is Kind.RECOVERY for e in recovery)
    since = store.events(EventQuery(since=batch[40].time, until=batch[45].time))
    assert [e.summary for e in since] == [f"event {i}" for i in range(44, 39, -1)]
    assert store.events(EventQuery(target="dashboard")) == []


def test_status_spans_survive_a_restart_and_the_live_one_runs_to_now(stores: Stores) -> None:
    store = stores.open()
    t0 = time.time() - 60
    store.status("trader", "pass", "active (running)", t0)
    store.status("trader", "fail", "dead", t0 + 30)
    store.status("trader", "pass", "active (running)", t0 + 40)
    now = time.time()
    live = store.spans("trader", t0 - 1, now)  # answered at once, whatever the writer did
    assert [(s.status, s.start) for s in live][-1] == ("pass", t0 + 40)
    assert live[-1].end == now
    store.close(now)
    stores.opened.remove(store)
    again = stores.open()
    until_blocking(lambda: again.ready, 5, "reopened")
    got = again.spans("trader", t0 - 1, now + 100)
    assert [(s.status, s.start, s.end) for s in got] == [
        ("pass", t0, t0 + 30),
        ("fail", t0 + 30, t0 + 40),
        ("pass", t0 + 40, now),  # closed at the clean stop: no data after it
    ]
    assert got[1].reason == "dead"


def test_a_corrupt_file_is_moved_aside_and_a_new_one_started(stores: Stores) -> None:
    stores.path.write_bytes(b"this is not a database, just junk " * 200)
    store = stores.open()
    until_blocking(lambda: None in stores.states, 5, "the store to be available again")
    assert stores.states[0] is not None and "corrupt" in stores.states[0]
    aside = list(stores.path.parent.glob("history.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    store.add(_events(FakeClock(time.time()), 1)[0])
    until_blocking(lambda: store.written == 1, 5, "an event written to the new file")
    assert store.events(EventQuery())[0].summary == "event 0"


def test_a_lock_held_elsewhere_degrades_then_it_recovers(stores: Stores) -> None:
    store = stores.open()
    clock = FakeClock(time.time())
    first, second = _events(clock, 2)
    store.add(first)
    until_blocking(lambda: store.written == 1, 5, "the first event")
    other = sqlite3.connect(stores.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        store.add(second)
        until_blocking(lambda: store.unavailable is not None, 5, "unavailable")
        assert "locked" in (store.unavailable or "")
    finally:
        other.execute("ROLLBACK")
        other.close()
    third = events.note(EventClock(clock), Kind.BUS, "bus back")
    store.add(third)
    until_blocking(lambda: store.written == 3, 5, "writing again after the lock is gone")
    assert len(stores.states) == 2 and "locked" in str(stores.states[0])
    assert stores.states[1] is None  # available again, said once each way
    # What came while it was locked was kept and written when it came back.
    assert [e.summary for e in store.events(EventQuery())] == ["bus back", "event 1", "event 0"]
    assert store.dropped == 0


def test_an_unwritable_place_is_unavailable_and_nothing_raises(stores: Stores) -> None:
    blocker = stores.path.parent / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    store = HistoryStore(blocker / "history.sqlite3", retry_s=60, on_state=stores.states.append)
    store.start()
    stores.opened.append(store)
    store.add(_events(FakeClock(time.time()), 1)[0])
    store.status("trader", "pass", "ok", time.time())
    until_blocking(lambda: store.unavailable is not None, 5, "unavailable")
    assert "cannot use" in (store.unavailable or "")
    assert len(stores.states) == 1  # said once


def test_retention_drops_old_events_and_spans(stores: Stores) -> None:
    store = stores.open()
    old = _events(FakeClock(time.time() - 40 * 86400), 3)
    new = _events(FakeClock(time.time() - 10), 2)
    for ev in [*old, *new]:
        store.add(ev)
    until_blocking(lambda: store.written == 5, 5, "5 events")
    store.close(time.time())
    stores.opened.remove(store)
    pruned = stores.open(retention_days=30)
    until_blocking(lambda: pruned.ready, 5, "reopened")
    until_blocking(lambda: len(pruned.events(EventQuery())) == 2, 5, "old events pruned")


def test_size_cap_drops_the_oldest_events(stores: Stores) -> None:
    store = stores.open(max_mb=0.25, prune_every_s=0.05)
    clock = FakeClock(time.time() - 3000)
    ids = EventClock(clock)
    for i in range(2000):
        store.add(events.note(ids, Kind.ALERT, f"alert {i} " + "x" * 400, "trader"))
        clock.advance(1.0)
    until_blocking(lambda: store.written == 2000, 5, "2000 events")
    until_blocking(
        lambda: (
            len(store.events(EventQuery(limit=1000))) < 1000
            and stores.path.stat().st_size <= 0.25 * 2**20
        ),
        5,
        "the oldest events pruned and the file under its cap",
    )
    kept = store.events(EventQuery(limit=1000))
    assert kept[0].summary.startswith("alert 1999 ")  # the newest stayed
    assert len(kept) > 100


def test_a_full_queue_drops_instead_of_growing(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")  # not started: nothing drains the queue
    for ev in _events(FakeClock(time.time()), MAX_PENDING + 5):
        store.add(ev)
    assert store.dropped == 5
