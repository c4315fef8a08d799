"""Log formatting for the journal, and the repeat filter (injected clock)."""

from __future__ import annotations

import logging
from pathlib import Path

from supervisor.api.metrics import Metrics
from supervisor.app.serving import http_server
from supervisor.config import parse
from supervisor.guard.throttle import Throttle
from supervisor.model import SelfStats
from supervisor.runtime import logs
from supervisor.runtime.logs import JournalFormatter, RedactFilter, RepeatFilter, under_journal
from supervisor.watch.health import HealthModel
from tests.clock import FakeClock


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


def test_lines_gone_quiet_are_forgotten() -> None:
    # Most warnings name a PID, so each is new: a line every 20 s for a day, one window's
    # worth remembered (and at most the pruning's slack), never every line ever logged.
    now = [0.0]
    f = RepeatFilter(window_s=60, clock=lambda: now[0])
    most = 0
    for pid in range(4_320):
        now[0] += 20
        assert f.filter(record(logging.WARNING, "trader: pid %s killed", pid))
        most = max(most, len(f))
    assert most <= 64
    # A line still holding repeats is kept until it can say how many.
    assert not f.filter(record(logging.WARNING, "trader: pid %s killed", 4_319))
    for pid in range(100):
        now[0] += 20
        f.filter(record(logging.WARNING, "monitor: pid %s killed", pid))
    again = record(logging.WARNING, "trader: pid %s killed", 4_319)
    assert f.filter(again)
    assert again.getMessage().endswith("(and 1 more like it in the last 60 s)")


TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_the_token_is_scrubbed_in_any_case_and_url_quoted() -> None:
    f = RedactFilter()
    f.secrets.add(TOKEN)
    lines = [
        f"getMe: https://api.telegram.org/bot{TOKEN}/getMe",
        # python-telegram-bot capitalizes API error texts: all but the first letter lowercased
        f"Chat not found for bot{TOKEN.lower()}",
        f"httpx.ConnectError: /bot{TOKEN.replace(':', '%3A')}/sendMessage",
        f"secret half alone: {TOKEN.split(':')[1].upper()}",
    ]
    for line in lines:
        rec = record(logging.WARNING, "telegram: %s", line)
        assert f.filter(rec)
        text = rec.getMessage()
        assert "<secret>" in text, text
        assert TOKEN.split(":")[1].lower() not in text.lower(), text


def test_short_secrets_are_not_redacted() -> None:
    f = RedactFilter()
    f.secrets.add("abc")
    rec = record(logging.WARNING, "abc stays")
    assert f.filter(rec)
    assert rec.getMessage() == "abc stays"


def test_the_api_key_is_redacted_like_the_token(tmp_path: Path, model: HealthModel) -> None:
    """Building the HTTP server registers the key: a client that sends it where we log
    client-given text (a Host header, a path) never gets it into the log."""
    key = "api-key-for-the-redaction-test-0123"
    target = {"name": "trader", "unit": "trader.service"}
    data = {"state_dir": str(tmp_path), "http": {"api_key": key}, "targets": [target]}
    config = parse(data, env={})
    metrics = Metrics(model.snapshot, lambda: SelfStats(1.0, 1, 0.0), FakeClock())
    http_server(
        config,
        metrics,
        FakeClock(),
        Throttle(),
        snapshot=model.snapshot,
        reset=lambda _name: False,
        routes=[],
    )
    line = f"refused GET '/' from 127.0.0.1: Host '{key}' is not served here"
    assert (
        logs.redacted(line) == "refused GET '/' from 127.0.0.1: Host '<secret>' is not served here"
    )
