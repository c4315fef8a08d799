"""Logging set-up: syslog priority prefixes under journald, timestamps elsewhere."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping

from supervisor.redaction import Redactor

# Python level -> syslog priority (sd-daemon(3)): journald reads "<N>" at a line's start.
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """`<4>supervisor.app.daemon: text`; no timestamp, the journal adds its own."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Prefix every line of the record with its priority."""
        priority = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        text = super().format(record)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


class RepeatFilter(logging.Filter):
    """Let an identical warning or error through once per window, then say how many were held.

    A target that fails the same way every pass must not flood the journal.
    """

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._window = window_s
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._prune_at = _PRUNE_MIN

    def __len__(self) -> int:
        """The lines remembered now."""
        return len(self._seen)

    def filter(self, record: logging.LogRecord) -> bool:
        """True to emit the record."""
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = self._clock()
        first, held = self._seen.get(key, (0.0, -1))
        if held >= 0 and now - first < self._window:
            self._seen[key] = (first, held + 1)
            return False
        if held > 0:
            record.msg = f"{record.msg} (and {held} more like it in the last {self._window:.0f} s)"
        if len(self._seen) >= self._prune_at:
            self._prune(now)
        self._seen[key] = (now, 0)
        return True

    def _prune(self, now: float) -> None:
        """Forget lines whose window has passed with nothing held. Most warnings name a PID or
        a time, so each is new: kept, they filled the dict to 1,000 lines over hours (a soak's
        two faults a minute log ~100 distinct warnings an hour) before it was cleared."""
        self._seen = {
            key: (first, held)
            for key, (first, held) in self._seen.items()
            if held > 0 or now - first < self._window
        }
        if len(self._seen) > _REMEMBER_MAX:  # a flood of distinct lines: forget, not grow
            self._seen.clear()
        self._prune_at = max(_PRUNE_MIN, 2 * len(self._seen))  # amortized: O(1) a line


_PRUNE_MIN = 64
_REMEMBER_MAX = 1000


class RedactFilter(logging.Filter):
    """Replace known secrets (the bot token, the API key) wherever they appear in a log line,
    in any case."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        """Always emit, with secrets replaced."""
        if not self.secrets:
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.secrets.scrub(record.exc_text)
        record.msg, record.args = self.secrets.scrub(record.getMessage()), None
        return True


_REDACT = RedactFilter()


def redact(secret: str) -> None:
    """Never log `secret` (the bot token, the API key) from now on, whatever its case or
    quoting."""
    _REDACT.secrets.add(secret)


def redacted(text: str) -> str:
    """`text` as a log line would show it."""
    return _REDACT.secrets.scrub(text)


def under_journal(env: Mapping[str, str] = os.environ) -> bool:
    """True when stderr is connected to the journal (systemd sets JOURNAL_STREAM)."""
    stream = env.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        device, inode = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def setup(level: str = "INFO", env: Mapping[str, str] = os.environ) -> None:
    """Configure the root logger once, for the daemon or a CLI command."""
    handler = logging.StreamHandler(sys.stderr)
    if under_journal(env):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RepeatFilter())
    handler.addFilter(_REDACT)
    # httpx logs every request URL at INFO, and the Bot API puts the token in the URL.
    for noisy in ("httpx", "httpcore", "telegram"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
