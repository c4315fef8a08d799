"""Persisted state: one JSON file in the state directory, written atomically.

A corrupt or unreadable file is moved aside with a warning (never a crash); a failed write
(disk full, read-only) is logged and retried at the next save, the state staying in memory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
VERSION = 1


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, durable: bool = True) -> None:
    """Replace `path` with `data` whole or not at all; raises OSError, leaving `path` as it was.

    Temp file beside it, every byte written (os.write may write less than asked, as on a
    nearly full disk) and its size checked, fsync, rename, fsync the directory (`durable`).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
            if os.fstat(fd).st_size != len(data):
                raise OSError(errno.EIO, f"{tmp} holds fewer bytes than were written")
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


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
        body = json.dumps({**data, "version": VERSION}, separators=(",", ":")).encode()
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self.path, body)
        except OSError as exc:
            if self.healthy:
                log.warning(
                    "cannot save state to %s: %s; keeping it in memory and retrying",
                    self.path,
                    exc.strerror,
                )
            self.healthy = False
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
