"""The one time-zone rule: stored and sent times are UTC, times read on the box are local."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from supervisor.times import iso, local_clock, local_stamp, utc_clock, utc_stamp

# 2027-01-14 08:00:05 UTC
TS = 1_799_913_605.25


@pytest.fixture
def two_hours_east() -> Iterator[None]:
    """The process's zone is UTC+2 (a POSIX rule: no tz database needed), restored after."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "XST-2"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_stored_and_sent_times_are_utc_whatever_the_zone(two_hours_east: None) -> None:
    assert iso(TS) == "2027-01-14T08:00:05.250Z"
    assert utc_stamp(TS) == "2027-01-14 08:00:05 UTC"
    assert utc_clock(TS) == "08:00:05 UTC"


def test_a_clock_time_read_on_the_box_is_local(two_hours_east: None) -> None:
    assert local_clock(TS) == "10:00:05"
    assert local_clock(TS, seconds=False) == "10:00"


def test_a_stored_stamp_is_shown_back_in_local_time(two_hours_east: None) -> None:
    assert local_stamp("2027-01-14T08:00:05.250Z") == "2027-01-14 10:00:05"
    assert local_stamp("2027-01-14T08:00:05.250Z", "%H:%M") == "10:00"


def test_text_that_is_no_stamp_is_shown_as_it_is() -> None:
    assert local_stamp("not a time") == "not a time"
    assert local_stamp("") == ""
