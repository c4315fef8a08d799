"""Events, their ids and words, the probe ring (pure)."""

from __future__ import annotations

import pytest

from supervisor.history import events
from supervisor.history.events import EventClock, EventQuery, Kind
from supervisor.history.recorder import RECENT, Recorder
from supervisor.history.ring import ProbeRing
from supervisor.model import ActiveState, ProbeResult, Status, TargetHealth, UnitState
from tests.clock import FakeClock

NOW = 1_800_000_000.0


def test_ids_are_wall_clock_microseconds_and_strictly_increase() -> None:
    clock = FakeClock(NOW)
    ids = EventClock(clock)
    first, second = ids.next_id(), ids.next_id()
    assert first == int(NOW * 1_000_000)
    assert second == first + 1  # same instant: still a new, later id
    clock.advance(1.0)
    assert ids.next_id() == int((NOW + 1) * 1_000_000)


def test_parse_time_takes_relative_epoch_and_iso() -> None:
    assert events.parse_time("2h", NOW) == NOW - 7200
    assert events.parse_time("30m", NOW) == NOW - 1800
    assert events.parse_time("1800000000", NOW) == NOW
    assert events.parse_time("2027-01-15T08:00:00Z", NOW) == NOW
    with pytest.raises(ValueError, match="time zone"):
        events.parse_time("2027-01-15T08:00:00", NOW)
    with pytest.raises(ValueError, match="not a time"):
        events.parse_time("yesterday", NOW)


def _unit(state: ActiveState, sub: str, pid: int, **kw: object) -> UnitState:
    return UnitState("trader.service", active_state=state, sub_state=sub, main_pid=pid, **kw)  # type: ignore[arg-type]


def test_unit_change_says_result_exit_and_pids() -> None:
    ids = EventClock(FakeClock(NOW))
    before = _unit(ActiveState.ACTIVE, "running", 41)
    after = _unit(ActiveState.FAILED, "failed", 0, result="signal", exit_code=2, exit_status=9)
    ev = events.unit_changed(ids, "trader", before, after)
    assert ev.kind is Kind.UNIT
    assert ev.summary == (
        "trader: unit active/running -> failed/failed (result signal, signal=KILL), pid 41 -> 0"
    )
    assert ev.data["mainPidBefore"] == 41 and ev.data["mainPidAfter"] == 0
    assert ev.data["exit"] == "signal=KILL"


def test_only_real_moves_are_unit_events() -> None:
    running = _unit(ActiveState.ACTIVE, "running", 41)
    assert events.unit_moved(None, running)
    assert not events.unit_moved(running, _unit(ActiveState.ACTIVE, "running", 41, n_restarts=3))
    # MainPID comes before ActiveState: that piece alone is not a move yet.
    assert not events.unit_moved(running, _unit(ActiveState.ACTIVE, "running", 0))
    assert events.unit_moved(running, _unit(ActiveState.FAILED, "failed", 0))


def test_status_change_and_document() -> None:
    ids = EventClock(FakeClock(NOW))
    t = TargetHealth("trader", "trader.service", True, Status.FAIL, "dead", NOW, 1, None, None)
    ev = events.status_changed(ids, t, Status.PASS)
    doc = ev.document()
    assert doc["kind"] == "status" and doc["target"] == "trader"
    assert doc["summary"] == "trader pass -> fail: dead"
    assert doc["data"] == {"from": "pass", "to": "fail", "reason": "dead"}
    assert doc["time"] == "2027-01-15T08:00:00.000Z"


def test_query_matches_like_the_store_filters() -> None:
    ids = EventClock(FakeClock(NOW))
    ev = events.note(ids, Kind.RECOVERY, "restart trader", "trader")
    assert EventQuery(target="trader", kind="recovery", since=NOW, until=NOW + 1).matches(ev)
    assert not EventQuery(target="dashboard").matches(ev)
    assert not EventQuery(kind="alert").matches(ev)
    assert not EventQuery(before=ev.id).matches(ev)
    assert not EventQuery(until=NOW).matches(ev)


def test_ring_keeps_the_last_results_per_probe() -> None:
    ring = ProbeRing(size=3)
    for i in range(5):
        status = Status.FAIL if i == 4 else Status.PASS
        ring.add(
            ProbeResult("trader", "heartbeat", "heartbeat", status, f"run {i}", 0.0015), NOW + i
        )
    samples = ring.recent("trader")["heartbeat"]
    assert [s.time for s in samples] == [NOW + 2, NOW + 3, NOW + 4]
    assert samples[-1].output == "run 4" and samples[0].output == ""  # words only for failures
    assert samples[0].latency_ms == 1.5
    assert ring.last_at("trader") == NOW + 4
    ring.keep_only({"dashboard"})
    assert ring.recent("trader") == {}


def test_with_history_off_the_last_page_of_events_is_kept_in_memory() -> None:
    # One page of /events (its default limit), no more: 500 took the soak 40 minutes to fill.
    recorder = Recorder(None, FakeClock(NOW), ["trader"])
    for n in range(RECENT + 50):
        recorder.record(Kind.CHAT, f"command {n}", "trader")
    found, from_store = recorder.events(EventQuery(limit=1000))
    assert not from_store
    assert RECENT == EventQuery().limit == 100
    assert [e.summary for e in found] == [f"command {n}" for n in range(149, 49, -1)]
