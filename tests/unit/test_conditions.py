"""JSON conditions with `now` passed in: paths, equality, bounds with warnings, freshness."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.config import JsonCondition
from supervisor.model import Status
from supervisor.probing import conditions

NOW = 1_800_000_000.0
DOC = {
    "status": "ok",
    "feed": {"connected": True, "last_message_at": "2027-01-15T08:00:00Z"},
    "balance": 80,
    "price": "101.5",
    "positions": [{"size": 3}, {"size": -1}],
    "mode": "live",
}


def cond(**kw: Any) -> JsonCondition:
    return JsonCondition(**kw)


def words(doc: Any, *conds: JsonCondition, now: float = NOW) -> list[tuple[Status, str]]:
    return [(f.status, f.words) for f in conditions.evaluate(doc, conds, now)]


def test_all_hold() -> None:
    at = conditions.timestamp("2027-01-15T08:00:00Z")
    assert isinstance(at, float)
    assert not words(
        DOC,
        cond(path="feed.connected", equals=True),
        cond(path="mode", one_of=["live", "paper"]),
        cond(path="positions[0].size", min=1, max=10),
        cond(path="feed.last_message_at", max_age_s=60),
        now=at + 30,
    )


def test_equals_is_strict_about_booleans() -> None:
    doc = {"connected": 1}
    assert words(doc, cond(path="connected", equals=True)) == [
        (Status.FAIL, "connected: 1 (expected true)")
    ]


def test_in_and_missing() -> None:
    assert words(DOC, cond(path="mode", one_of=["paper"]), cond(path="feed.nope", min=1)) == [
        (Status.FAIL, 'mode: "live" (expected one of ["paper"])'),
        (Status.FAIL, "feed.nope: missing"),
    ]
    assert words(DOC, cond(path="positions[5].size", min=0)) == [
        (Status.FAIL, "positions[5].size: missing")
    ]


def test_bounds_fail_before_they_warn() -> None:
    low = cond(path="balance", min=100, warn_below=500)
    assert words(DOC, low) == [(Status.FAIL, "balance: 80 < 100")]
    assert words({"balance": 300}, low) == [(Status.WARN, "balance: 300 < 500 (warn)")]
    assert not words({"balance": 500}, low)
    high = cond(path="positions[1].size", max=5, warn_above=-2)
    assert words(DOC, high) == [(Status.WARN, "positions[1].size: -1 > -2 (warn)")]


def test_numbers_in_strings_count_and_other_things_do_not() -> None:
    assert not words(DOC, cond(path="price", min=100))
    assert words(DOC, cond(path="mode", min=1)) == [(Status.FAIL, 'mode: "live" is not a number')]
    assert words(DOC, cond(path="feed.connected", min=1)) == [
        (Status.FAIL, "feed.connected: true is not a number")
    ]


@pytest.mark.parametrize(
    "stamp", ["2027-01-15T08:00:00Z", "2027-01-15T09:00:00+01:00", 1_800_000_000 - 312]
)
def test_age_of_iso_and_epoch_timestamps(stamp: Any) -> None:
    at = conditions.timestamp("2027-01-15T08:00:00Z")
    assert isinstance(at, float)
    now = at + 312 if isinstance(stamp, str) else NOW
    got = words({"t": stamp}, cond(path="t", max_age_s=60), now=now)
    assert got == [(Status.FAIL, "t: 312 s old (max 60 s)")]
    assert words({"t": stamp}, cond(path="t", max_age_s=600, warn_age_s=300), now=now) == [
        (Status.WARN, "t: 312 s old (warn 300 s)")
    ]


def test_epoch_milliseconds_and_a_clock_ahead() -> None:
    assert not words({"t": (NOW - 10) * 1000}, cond(path="t", max_age_s=60))
    assert not words({"t": NOW + 5}, cond(path="t", max_age_s=1))  # ahead: fresh, not stale


def test_bad_timestamps_say_why() -> None:
    got = words(
        {"a": "yesterday", "b": "2027-01-15T08:00:00", "c": True},
        cond(path="a", max_age_s=60),
        cond(path="b", max_age_s=60),
        cond(path="c", max_age_s=60),
    )
    assert got == [
        (Status.FAIL, 'a: "yesterday" is not a timestamp (ISO-8601 or seconds since the epoch)'),
        (Status.FAIL, 'b: "2027-01-15T08:00:00" has no time zone (add Z or +00:00)'),
        (Status.FAIL, "c: true is not a timestamp"),
    ]


def test_top_level_array_path() -> None:
    assert not words([{"ok": True}], cond(path="[0].ok", equals=True))
