"""Log formatting for the journal, and the repeat filter (injected clock)."""

from __future__ import annotations

import logging

from supervisor.runtime.logs import JournalFormatter, RepeatFilter, under_journal


def record(level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("supervisor.x", level, __file__, 1, msg, args, None)


def test_journal_lines_carry_syslog_priority_and_no_timestamp() -> None:
    fmt = JournalFormatter()
    assert fmt.format(record(logging.ERROR, "restart %s failed", "trader")) == (
        "<3>supervisor.x: restart trader failed"
    )
    assert fmt.format(record(logging.WARNING, "w")).startswith("<4>")
    assert fmt.format(record(logging.INFO, "i")).startswith("<6>")
    assert fmt.format(record(logging.DEBUG, "d")).startswith("<7>")
    assert fmt.format(record(logging.ERROR, "a\nb")) == "<3>supervisor.x: a\n<3>b"


def test_not_under_journal_without_matching_stream() -> None:
    assert not under_journal({})
    assert not under_journal({"JOURNAL_STREAM": "1:2"})
    assert not under_journal({"JOURNAL_STREAM": "garbage"})


def test_repeats_are_held_then_counted() -> None:
    now = [0.0]
    f = RepeatFilter(window_s=60, clock=lambda: now[0])
    assert f.filter(record(logging.WARNING, "probe %s failed", "a"))
    for _ in range(5):
        now[0] += 1
        assert not f.filter(record(logging.WARNING, "probe %s failed", "a"))
    assert f.filter(record(logging.WARNING, "probe %s failed", "b"))  # different text
    assert f.filter(record(logging.INFO, "info passes always"))
    assert f.filter(record(logging.INFO, "info passes always"))
    now[0] = 61
    again = record(logging.WARNING, "probe %s failed", "a")
    assert f.filter(again)
    assert again.getMessage() == "probe a failed (and 5 more like it in the last 60 s)"
