"""Processes named by PID and start time, the unit cgroup sweep, and the machine-wide lock.

Nothing here signals a PID without first checking its recorded start time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import posixpath
import signal
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from supervisor.errors import SupervisorError
from supervisor.procfs import ProcStat, parse_cgroup, parse_stat
from supervisor.recovery.ports import signal_pinned

LOCK_PATH = Path("/tmp/sidecar-supervisor-sandbox.lock")
# Where the manager puts unit processes, relative to the parent of its own init.scope.
_UNIT_SLICES = ("app.slice", "session.slice", "background.slice")

T = TypeVar("T")


class SandboxError(SupervisorError):
    """The sandbox could not do what was asked (lock taken, unit not ready, bad state)."""


class SandboxUnavailable(SandboxError):  # noqa: N818 - the name callers already use
    """A systemd user manager cannot run here; the message says exactly why.

    Only what the preflight finds missing (systemd, dbus-user-session, root for
    /run/systemd/system): tests may skip on it outside CI.
    """


class SandboxFailed(SandboxError):  # noqa: N818 - parallel to SandboxUnavailable
    """A user manager could run here but died or did not answer in time: a broken machine.

    Never a reason to skip a test: a manager that dies or is slow is what tests must see.
    """


# --- processes, named by PID and start time -------------------------------------------------


def _proc_stat(pid: int) -> ProcStat | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError):
        return None


def proc_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot; None if gone or a zombie."""
    stat = _proc_stat(pid)
    return None if stat is None or stat.zombie else stat.start_ticks


def _parent_pid(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return None if stat is None else stat.ppid


@dataclass(frozen=True)
class ProcId:
    """A process named by PID *and* start time, so a reused PID is never taken for it."""

    pid: int
    start: int
    what: str = ""

    @classmethod
    def of(cls, pid: int, what: str = "") -> ProcId | None:
        """The process `pid` is now, or None when there is none."""
        start = proc_start_time(pid)
        return None if start is None else cls(pid, start, what)

    def alive(self) -> bool:
        """True while this very process exists (a zombie counts as gone)."""
        return proc_start_time(self.pid) == self.start


def send_signal(proc: ProcId, signum: int) -> bool:
    """Signal `proc` if it is still the process we recorded (its start time); False if gone."""
    return signal_pinned(proc.pid, signum, proc.alive)


def wait_for(
    predicate: Callable[[], T | None], timeout: float, what: str, *, interval: float = 0.05
) -> T:
    """Poll `predicate` until it returns something truthy and return that.

    Raises TimeoutError naming `what` once `timeout` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(interval, remaining))


def terminate(procs: Iterable[ProcId], timeout: float = 5.0) -> None:
    """SIGTERM (and SIGCONT, so a stopped one can act on it) then SIGKILL what is left."""
    live = [proc for proc in procs if proc.alive()]
    for sig in (signal.SIGTERM, signal.SIGCONT):
        for proc in live:
            send_signal(proc, sig)
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not any(p.alive() for p in live), timeout, "processes to exit")
        return
    for proc in live:
        send_signal(proc, signal.SIGKILL)
    wait_for(lambda: not any(p.alive() for p in live), timeout, "killed processes to vanish")


def _systemd_cgroup(pid: int) -> str | None:
    """The cgroup systemd tracks `pid` in: the name=systemd hierarchy on v1, else the v2 one."""
    try:
        return parse_cgroup(Path(f"/proc/{pid}/cgroup").read_text()) or None
    except OSError:
        return None


def _cgroup_base(manager_pid: int) -> str | None:
    """Parent of the manager's init.scope: its units live in slices below it."""
    path = _systemd_cgroup(manager_pid)
    if path is None or posixpath.basename(path) != "init.scope":
        return None  # an unknown layout: do not guess which cgroups are ours
    return posixpath.dirname(path)


def _pids() -> list[int]:
    with os.scandir("/proc") as entries:
        return [int(entry.name) for entry in entries if entry.name.isdigit()]


def _uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def unit_cgroup_members(base: str, since: int, uid: int | None = None) -> list[ProcId]:
    """Processes of `uid` (default: ours) started at or after `since` in the unit slices
    below `base`."""
    owner = os.geteuid() if uid is None else uid
    prefixes = tuple(posixpath.join(base, s) + "/" for s in _UNIT_SLICES)
    found = []
    for pid in _pids():
        path = _systemd_cgroup(pid)
        if pid in (1, os.getpid()) or path is None or not (path + "/").startswith(prefixes):
            continue
        proc = ProcId.of(pid, f"in cgroup {path}")
        if proc and proc.start >= since and _uid_of(pid) == owner:
            found.append(proc)
    return found


def _remove_unit_cgroups(base: str) -> None:
    """rmdir the (now empty) unit cgroups a killed manager left in every hierarchy."""
    hierarchies = [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()]
    for hierarchy in hierarchies:
        for slice_name in _UNIT_SLICES:
            top = hierarchy / base.lstrip("/") / slice_name
            if not top.is_dir():
                continue
            for dirpath, _dirs, _files in os.walk(top, topdown=False):
                with contextlib.suppress(OSError):  # busy or gone: it is not ours to force
                    os.rmdir(dirpath)


def _pid1_is_systemd() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


# --- the machine-wide lock -------------------------------------------------------------------


def _open_lock(path: Path) -> int:
    try:
        # /tmp is world-writable: never follow a planted symlink, never use another's file.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise SandboxError(f"cannot open the sandbox lock {path}: {exc}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise SandboxError(f"{path} is not a regular file of ours: remove it")
    return fd


def _try_lock(owner: Path, path: Path = LOCK_PATH) -> int | None:
    """Take the lock at `path` (default: the machine's) and write `owner` into it; None when
    another process holds it."""
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{owner}\n".encode(), 0)
    return fd


def _release_lock(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.close(fd)


def lock_owner(path: Path = LOCK_PATH) -> str:
    """The root of the sandbox that holds (or last held) the lock at `path`, or ''."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""
