"""A unit's processes, CPU time and RSS from the cgroup tree and /proc.

systemd's `CPUUsageNSec` is unset on cgroup v1 hosts (and `MemoryCurrent` may be), so the
resources probe falls back to this. The roots are parameters so tests point them at a small
fake tree (like prometheus_client's ProcessCollector).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from supervisor.procfs import parse_stat


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


def _walk_procs(base: Path) -> Iterable[int]:
    for dirpath, _dirs, files in os.walk(base):
        if "cgroup.procs" in files:
            try:
                text = (Path(dirpath) / "cgroup.procs").read_text()
            except OSError:
                continue
            yield from (int(line) for line in text.split())
