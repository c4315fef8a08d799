"""Persisted state: one JSON file in the state directory, written atomically.

A corrupt or unreadable file is moved aside with a warning (never a crash); a failed write
(disk full, read-only) is logged and retried at the next save, the state staying in memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
VERSION = 1


class StateStore:
    """`<dir>/state.json`: load once at start, save after changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"
        self.healthy = True  # False after a failed write, until one succeeds

    def load(self) -> dict[str, Any]:
        """The saved state, or {} when there is none or it cannot be used."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read state %s: %s; starting fresh", self.path, exc.strerror)
            return {}
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != VERSION:
                raise ValueError("not a state file of this version")
        except ValueError as exc:
            self._move_aside(str(exc))
            return {}
        return data

    def save(self, data: dict[str, Any]) -> bool:
        """Write atomically (temp file, fsync, rename, fsync the directory); False on failure."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        body = json.dumps({**data, "version": VERSION}, separators=(",", ":")).encode()
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            if self.healthy:
                log.warning(
                    "cannot save state to %s: %s; keeping it in memory and retrying",
                    self.path,
                    exc.strerror,
                )
            self.healthy = False
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            return False
        if not self.healthy:
            log.info("state saved to %s again", self.path)
        self.healthy = True
        return True

    def _move_aside(self, why: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            log.warning(
                "state %s is unusable (%s) and cannot be moved aside: %s",
                self.path,
                why,
                exc.strerror,
            )
            return
        log.warning(
            "state %s is unusable (%s): moved aside to %s; starting fresh", self.path, why, aside
        )
