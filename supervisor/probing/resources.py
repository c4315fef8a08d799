"""A unit's processes, CPU time and RSS from the cgroup tree and /proc.

systemd's `CPUUsageNSec` is unset on cgroup v1 hosts (and `MemoryCurrent` may be), so the
resources probe falls back to this. The roots are parameters so tests point them at a small
fake tree (like prometheus_client's ProcessCollector).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from supervisor.probing.stuck import Reading
from supervisor.procfs import parse_schedstat, parse_stat, parse_tcp

_STOPPED = ("T", "t")


class ProcReader:
    """Reads processes of a cgroup and their CPU and memory."""

    def __init__(
        self,
        proc: Path = Path("/proc"),
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        ticks_per_s: int | None = None,
        page_size: int | None = None,
    ) -> None:
        self._proc = proc
        self._cgroup_root = cgroup_root
        self._ticks = ticks_per_s or os.sysconf("SC_CLK_TCK")
        self._page = page_size or os.sysconf("SC_PAGE_SIZE")

    def pids(self, control_group: str) -> list[int]:
        """Every PID in the unit's cgroup and its sub-cgroups (v2, hybrid, or v1)."""
        rel = control_group.strip("/")
        if not rel:
            return []  # never the root cgroup: that would be every process on the host
        for hierarchy in ("unified", "systemd", ""):
            base = self._cgroup_root / hierarchy / rel if hierarchy else self._cgroup_root / rel
            if (base / "cgroup.procs").is_file():
                return sorted(set(_walk_procs(base)))
        return []

    def oom_kills(self, control_group: str) -> int | None:
        """How many times the kernel's OOM killer struck in the cgroup so far; None if unknown.

        A cumulative figure: callers count a run's kills as the rise since the run began.
        """
        rel = control_group.strip("/")
        if not rel:
            return None
        candidates = (
            (self._cgroup_root / rel / "memory.events"),  # v2
            (self._cgroup_root / "unified" / rel / "memory.events"),  # hybrid
            (self._cgroup_root / "memory" / rel / "memory.oom_control"),  # v1 (kernel 4.13+)
        )
        for path in candidates:
            try:
                text = path.read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value)
        return None

    def cpu_seconds(self, pids: Iterable[int]) -> float:
        """User + system CPU seconds of the live processes among `pids`."""
        total = 0
        for pid in pids:
            try:
                total += parse_stat((self._proc / str(pid) / "stat").read_text()).cpu_ticks
            except OSError:
                continue  # exited since we listed it
        return total / self._ticks

    def rss_bytes(self, pids: Iterable[int]) -> int:
        """Resident memory of the live processes among `pids`."""
        total = 0
        for pid in pids:
            try:
                statm = (self._proc / str(pid) / "statm").read_text().split()
            except OSError:
                continue
            total += int(statm[1]) * self._page
        return total

    def listener(self, control_group: str, port: int, at: float) -> Reading:
        """The unit's processes that hold a listening socket on `port`, and how they fare.

        Read only while a probe is overdue (rarely): it lists the unit's descriptors.
        """
        # The unit's sockets first: the tables are then read for those only, never for
        # every connection on the host.
        held = {pid: _socket_inodes(self._proc / str(pid)) for pid in self.pids(control_group)}
        ours = set().union(*held.values())
        queues: dict[int, int] = {}
        connected: set[int] = set()
        for table in ("tcp", "tcp6") if ours else ():
            try:
                with (self._proc / "net" / table).open() as lines:
                    read = parse_tcp(lines, port, among=ours)
            except OSError:
                continue
            queues.update((s.inode, s.queued) for s in read.listeners)
            connected |= read.connected
        owners = [pid for pid, sockets in held.items() if sockets & queues.keys()]
        owned = ours & queues.keys()
        connections = sum(len(held[pid] & connected) for pid in owners)
        states, cpu_ns = self._threads(owners)
        return Reading(
            at=at,
            port=port,
            pids=tuple(owners),
            stopped=bool(states) and all(s in _STOPPED for s in states),
            runnable="R" in states,
            cpu_ns=cpu_ns,
            queued=sum(queues[i] for i in owned),
            states=tuple(states),
            wchan=self._wchan(owners[0]) if owners else "",
            connections=connections,
        )

    def _wchan(self, pid: int) -> str:
        """Where the process's main thread waits in the kernel; "" when running or unknown."""
        try:
            text = (self._proc / str(pid) / "wchan").read_text().strip()
        except OSError:
            return ""
        return "" if text in ("0", "") else text

    def _threads(self, pids: Iterable[int]) -> tuple[list[str], int]:
        """Every thread's state, and their CPU time in ns (schedstat, else stat's ticks)."""
        states: list[str] = []
        cpu_ns = 0
        for pid in pids:
            try:
                tasks = list((self._proc / str(pid) / "task").iterdir())
            except OSError:
                continue  # exited since we listed it
            for task in tasks:
                try:
                    stat = parse_stat((task / "stat").read_text())
                except (OSError, ValueError):
                    continue
                states.append(stat.state)
                try:
                    cpu_ns += parse_schedstat((task / "schedstat").read_text())
                except (OSError, ValueError):
                    cpu_ns += stat.cpu_ticks * 1_000_000_000 // self._ticks
        return states, cpu_ns


def _socket_inodes(pid_dir: Path) -> set[int]:
    """Inodes of the sockets a process holds (none if it is gone or not ours to read)."""
    found: set[int] = set()
    try:
        fds = list((pid_dir / "fd").iterdir())
    except OSError:
        return found
    for fd in fds:
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(int(link[8:-1]))
    return found


def _walk_procs(base: Path) -> Iterable[int]:
    for dirpath, _dirs, files in os.walk(base):
        if "cgroup.procs" in files:
            try:
                text = (Path(dirpath) / "cgroup.procs").read_text()
            except OSError:
                continue
            yield from (int(line) for line in text.split())
