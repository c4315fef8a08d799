"""Persisted state: one JSON file in the state directory, written whole or not at all.

A corrupt or unreadable file is moved aside with a warning (never a crash; only the last
few are kept); a failed write (disk full, read-only) is logged and retried at the next
save, the state staying in memory and the good file on disk untouched. One instance per
state directory: `InstanceLock` holds an flock on `<dir>/lock` for the process's life.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from supervisor.errors import AlreadyRunningError

log = logging.getLogger(__name__)
VERSION = 1
KEEP_ASIDE = 3  # corrupt state files kept for a person to look at; older ones are removed


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, durable: bool = True) -> None:
    """Replace `path` with `data` whole or not at all; raises OSError, leaving `path` as it was.

    Temp file beside it, every byte written (os.write may write less than asked, as on a
    nearly full disk) and its size checked, fsync, rename, fsync the directory (`durable`).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
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


def private_dir(directory: Path) -> None:
    """Create `directory` (0700), or tighten an existing one that others can read."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = directory.stat().st_mode & 0o777
    if mode & 0o077:
        os.chmod(directory, 0o700)
        log.warning(
            "state directory %s was mode %o: tightened to %o", directory, mode, mode & 0o700
        )


def write_private(path: Path, data: bytes) -> None:
    """Write `path` whole (0600) in a private directory, for what may hold a secret; OSError."""
    private_dir(path.parent)
    write_atomic(path, data, mode=0o600)


class InstanceLock:
    """An exclusive flock on `<dir>/lock` holding our PID; released when the process ends."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunningError naming the holder's PID."""
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise AlreadyRunningError(str(self.path.parent), holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let a next instance start (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)


class StateStore:
    """`<dir>/state.json`: load once at start, save after changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"
        self.healthy = True  # False after a failed write, until one succeeds
        self.writes = 0  # files written (tests and the benchmark count them)
        # A save in a worker thread may still run when shutdown saves on the loop: one at a
        # time, so the last state asked for is the one that stays.
        self._one_at_a_time = threading.Lock()

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
            self.move_aside(str(exc))
            return {}
        return data

    def save(self, data: dict[str, Any]) -> bool:
        """Write atomically (temp file, fsync, rename, fsync the directory); False on failure."""
        body = json.dumps({**data, "version": VERSION}, separators=(",", ":")).encode()
        with self._one_at_a_time:
            return self._write(body)

    def _write(self, body: bytes) -> bool:
        try:
            private_dir(self.directory)
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
        self.writes += 1
        return True

    def move_aside(self, why: str) -> None:
        """Keep an unusable file for a person to look at, and start fresh."""
        self._prune_aside(KEEP_ASIDE - 1)
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.time_ns()}")
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

    def _prune_aside(self, keep: int) -> None:
        old = sorted(self.directory.glob(f"{self.path.name}.corrupt-*"), key=_aside_age)
        for path in old[: max(0, len(old) - keep)]:
            with contextlib.suppress(OSError):
                path.unlink()


def _aside_age(path: Path) -> int:
    try:
        return int(path.name.rsplit("-", 1)[1])
    except ValueError:
        return 0
