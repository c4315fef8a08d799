"""Logging set-up: syslog priority prefixes under journald, timestamps elsewhere."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

# Python level -> syslog priority (sd-daemon(3)): journald reads "<N>" at a line's start.
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """`<4>supervisor.daemon: text`; no timestamp, the journal adds its own."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Prefix every line of the record with its priority."""
        priority = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        text = super().format(record)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
