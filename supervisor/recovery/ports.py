"""Free a TCP port held by an orphan, and only an orphan.

`find_holders` scans /proc (call it off the event loop, on demand only). `judge` is the pure
safety rule set. `terminate` pins the process with a pidfd and re-checks its start time
before every signal, so a PID reused since we looked is never signalled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import select
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from supervisor.procfs import parse_cgroup, parse_stat, parse_tcp

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Holder:
    """A process with a listening socket on a port."""

    pid: int
    uid: int
    user: str
    cmdline: str
    cgroup: str
    start_ticks: int  # /proc/PID/stat field 22: identifies the process, not just the PID
    port: int

    def describe(self) -> str:
        """PID, owner, command line and cgroup, for logs and /health."""
        return f"pid {self.pid} ({self.cmdline!r}, user {self.user}, cgroup {self.cgroup})"


def listening_inodes(port: int, proc: Path = Path("/proc")) -> set[int]:
    """Socket inodes listening on `port` (IPv4 and IPv6)."""
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            with (proc / "net" / table).open() as lines:
                inodes.update(s.inode for s in parse_tcp(lines, port).listeners)
        except OSError:
            continue
    return inodes


def find_holders(port: int, proc: Path = Path("/proc")) -> list[Holder]:
    """Every process holding a listening socket on `port` (scans /proc: not on the loop)."""
    wanted = {f"socket:[{i}]" for i in listening_inodes(port, proc)}
    if not wanted:
        return []
    holders = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and _holds(entry, wanted):
            holder = _describe(entry, port)
            if holder is not None:
                holders.append(holder)
    return holders


def _holds(pid_dir: Path, wanted: set[str]) -> bool:
    base = f"{pid_dir}/fd"  # names, not a Path per descriptor of every process on the host
    try:
        fds = os.listdir(base)
    except OSError:
        return False  # gone, or not ours to read
    for fd in fds:
        try:
            if os.readlink(f"{base}/{fd}") in wanted:
                return True
        except OSError:
            continue
    return False


def _describe(pid_dir: Path, port: int) -> Holder | None:
    try:
        uid = pid_dir.stat().st_uid
        cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        start = start_ticks(pid_dir)
        cgroup = cgroup_of(pid_dir)
    except (OSError, ValueError):
        return None
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return Holder(int(pid_dir.name), uid, user, cmdline.strip(), cgroup, start, port)


def start_ticks(pid_dir: Path) -> int:
    """The process's start time in clock ticks since boot."""
    return parse_stat((pid_dir / "stat").read_text()).start_ticks


def cgroup_of(pid_dir: Path) -> str:
    """The unified (0::) cgroup path, else systemd's own v1 hierarchy."""
    return parse_cgroup((pid_dir / "cgroup").read_text())


def signal_pinned(pid: int, signum: int, same: Callable[[], bool]) -> bool:
    """Signal `pid` only if `same()` still holds once it is pinned; False if gone or not same.

    The pidfd pins whatever process had the PID when opened; `same()` (a start time or a
    MainPID read again) then proves it is the one meant, and a signal through the pidfd can
    never reach a successor that reuses the PID.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if not same():
            return False
        signal.pidfd_send_signal(pidfd, signum)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)


def judge(
    holder: Holder,
    *,
    own_unit: str,
    other_units: Iterable[str],
    our_pid: int,
    our_uid: int,
) -> str | None:
    """None if the holder may be killed as an orphan; else the rule that forbids it."""
    segments = [s for s in holder.cgroup.split("/") if s]
    if own_unit in segments:
        return f"{holder.describe()} is in {own_unit} itself: a restart deals with it"
    if holder.pid == 1:
        return f"{holder.describe()} is PID 1"
    if holder.pid == our_pid:
        return f"{holder.describe()} is the supervisor itself"
    if holder.uid != our_uid:
        return f"{holder.describe()} runs as another user ({holder.user})"
    for unit in other_units:
        if unit in segments:
            return f"{holder.describe()} belongs to {unit}, another watched unit"
    services = [s for s in segments if s.endswith(".service")]
    if services:
        return f"{holder.describe()} belongs to {services[-1]}, a service we do not own"
    return None


async def terminate(
    holder: Holder,
    recheck: Callable[[], Awaitable[str | None]],
    grace_s: float = 3.0,
    proc: Path = Path("/proc"),
) -> str:
    """SIGTERM, wait up to `grace_s`, then SIGKILL; returns what happened, in words.

    Right before each signal, with the process pinned by a pidfd, it must still be the same
    process (start time) and `recheck()` must still find it listening on the port and
    passing every rule (None); otherwise it is not signalled.
    """
    try:
        pidfd = os.pidfd_open(holder.pid)
    except ProcessLookupError:
        return "already gone"
    try:
        for signum, words in (
            (signal.SIGTERM, "terminated (SIGTERM)"),
            (signal.SIGKILL, "killed (SIGKILL)"),
        ):
            if not _same_process(holder, proc):
                return "already gone (PID reused by another process: not signalled)"
            refused = await recheck()
            if refused is not None:
                return f"not signalled: {refused}"
            signal.pidfd_send_signal(pidfd, signum)
            if await _exited(pidfd, grace_s):
                return words
        return "did not exit after SIGKILL"
    except ProcessLookupError:
        return "terminated (SIGTERM)"
    finally:
        os.close(pidfd)


def _same_process(holder: Holder, proc: Path) -> bool:
    try:
        return start_ticks(proc / str(holder.pid)) == holder.start_ticks
    except (OSError, ValueError):
        return False


async def _exited(pidfd: int, timeout_s: float) -> bool:
    """A pidfd turns readable when its process exits: wait for that, with a deadline."""
    if select.select([pidfd], [], [], 0)[0]:
        return True
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        async with asyncio.timeout(timeout_s):
            await done
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
