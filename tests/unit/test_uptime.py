"""Uptime from status spans, hourly bars and incidents (pure)."""

from __future__ import annotations

import pytest

from supervisor.history import report, uptime
from supervisor.history.ring import Sample
from supervisor.history.uptime import HOUR_S, Span

NOW = 1_800_000_000.0 - 1_800_000_000.0 % HOUR_S + 1800  # half past an hour


def test_uptime_is_time_in_pass_over_time_with_data() -> None:
    spans = [
        Span("pass", NOW - 1000, NOW - 100),
        Span("fail", NOW - 100, NOW - 10, "dead"),
        Span("pass", NOW - 10, NOW),
    ]
    s = uptime.share(spans, NOW - 1000, NOW)
    assert (s.passing, s.failing, s.known) == (910, 90, 1000)
    assert s.percent == pytest.approx(91.0)


def test_gaps_and_unknown_count_neither_way() -> None:
    # Stopped for an hour between two passing stretches, and unknown for a while: still 100 %.
    spans = [
        Span("pass", NOW - 7200, NOW - 3600),
        Span("unknown", NOW - 1800, NOW - 1700),
        Span("pass", NOW - 1700, NOW),
    ]
    assert uptime.uptime(spans, NOW) == {"24h": 100.0, "7d": 100.0, "30d": 100.0}


def test_windows_cut_spans_at_their_start() -> None:
    day = uptime.DAY_S
    spans = [Span("fail", NOW - 3 * day, NOW - day - 100), Span("pass", NOW - day - 100, NOW)]
    got = uptime.uptime(spans, NOW)
    assert got["24h"] == 100.0
    assert got["7d"] == pytest.approx(100 * (day + 100) / (3 * day))


def test_no_data_is_none() -> None:
    assert uptime.uptime([], NOW)["24h"] is None


def test_hours_are_coloured_by_how_much_was_up() -> None:
    hour = NOW - NOW % HOUR_S
    spans = [
        Span("pass", hour - 3 * HOUR_S, hour - 2 * HOUR_S),  # green
        Span("pass", hour - 2 * HOUR_S, hour - HOUR_S - 60),
        Span("fail", hour - HOUR_S - 60, hour - HOUR_S, "down a minute"),  # amber: 98.3 %
        Span("fail", hour - HOUR_S, hour - HOUR_S / 2),  # red: half down
        Span("pass", hour - HOUR_S / 2, NOW),  # the current, partial hour: green
    ]
    bars = uptime.hours(spans, NOW)
    assert len(bars) == 24
    assert bars[-1].start == hour
    assert [b.colour for b in bars[-4:]] == ["green", "amber", "red", "green"]
    assert bars[-3].percent == pytest.approx(100 * (HOUR_S - 60) / HOUR_S)
    assert bars[0].colour == "grey" and bars[0].percent is None


def test_incidents_run_from_first_fail_to_the_next_pass() -> None:
    spans = [
        Span("pass", 0, 100),
        Span("fail", 100, 130, "dead"),
        Span("warn", 130, 140),  # activating again: still the same incident
        Span("pass", 140, 200),
        Span("fail", 200, 260, "hung"),
    ]
    found = uptime.incidents(spans, live=True)
    assert [(i.start, i.end, i.reason) for i in found] == [(100, 140, "dead"), (200, None, "hung")]
    assert found[1].duration(300) == 100
    closed = uptime.incidents(spans, live=False)
    assert closed[-1].end == 260  # the supervisor stopped: it ended when we last knew


def test_target_document_has_windows_strip_incidents_and_ring() -> None:
    spans = [Span("pass", NOW - 600, NOW - 60), Span("fail", NOW - 60, NOW, "heartbeat: stale")]
    ring = {"heartbeat": [Sample(NOW - 5, False, 0.4, "heartbeat: 12 s old")]}
    doc = report.target_document("trader", spans, ring, NOW, live=True)
    assert doc["uptime"]["24h"] == pytest.approx(90.0)
    assert doc["incidents"][0]["open"] is True
    assert doc["incidents"][0]["durationS"] == 60
    assert doc["probes"]["heartbeat"][0] == {
        "t": NOW - 5,
        "ok": False,
        "ms": 0.4,
        "output": "heartbeat: 12 s old",
    }
    assert report.last_incident(doc).startswith("open since ")
    assert report.last_incident({"incidents": []}) == "none"


def test_cli_lines_and_the_uptime_table() -> None:
    line = report.event_line(
        {"time": "2027-01-15T08:00:00.000Z", "kind": "unit", "summary": "trader: unit seen"}
    )
    assert line.endswith("  unit        trader: unit seen")
    assert line[:10].startswith("2027-01-1")  # local time: the date may differ by a day
    summary = {
        "unavailable": "disk full",
        "targets": {
            "trader": {
                "uptime24h": 99.5,
                "incidents": [
                    {"start": "2027-01-15T08:00:00.000Z", "durationS": 42, "open": False}
                ],
            },
            "dashboard": {"uptime24h": None, "incidents": []},
        },
    }
    assert report.uptime_table(summary).splitlines() == [
        "TARGET     UPTIME 24H  LAST INCIDENT",
        "trader     99.50 %     08:00:00Z, 42s",
        "dashboard  no data     none",
        "(history unavailable: disk full)",
    ]
