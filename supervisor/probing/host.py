"""Host checks: disk space and inodes, memory, and load, from statvfs and /proc.

The /proc root is a parameter so tests read a small fake tree. statvfs runs in a thread:
on a hung network filesystem it could block, and the probe's timeout must still hold.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from supervisor.config import DiskProbe, LoadProbe, MemoryProbe
from supervisor.model import PerfDatum, Status
from supervisor.probing.outcome import Outcome, number, threshold_level, worst

_KIB = 1024


def size(n: float) -> str:
    """Bytes for a person: 512 B, 3.4 MiB, 12.0 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < _KIB or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= _KIB
    raise AssertionError("unreachable")


def _bound(level: Status, warn: float, fail: float, unit: str = "%") -> str:
    if level is Status.FAIL:
        return f" (fail at {number(fail)}{unit})"
    if level is Status.WARN:
        return f" (warn at {number(warn)}{unit})"
    return ""


class DiskCheck:
    """Used space and inodes of the filesystem holding a path, against two thresholds."""

    kind = "disk"

    def __init__(self, spec: DiskProbe) -> None:
        self._spec = spec

    async def check(self) -> Outcome:
        """statvfs the path and judge it."""
        spec = self._spec
        try:
            st = await asyncio.to_thread(os.statvfs, spec.path)
        except OSError as exc:
            return Outcome(Status.FAIL, f"disk: cannot stat {spec.path}: {exc.strerror}")
        return judge_disk(spec, st)


def judge_disk(spec: DiskProbe, st: os.statvfs_result) -> Outcome:
    """Percent used as df shows it (of what non-root users can have), inodes likewise."""
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used_pct = 100.0 * used / (used + free) if used + free else 0.0
    warn, fail = spec.warn_percent, spec.fail_percent
    space = threshold_level(used_pct, warn, fail)
    words = f"disk: {spec.path} {used_pct:.0f}% used{_bound(space, warn, fail)}, {size(free)} free"
    perf = [PerfDatum("used", used_pct / 100, "ratio"), PerfDatum("free", float(free), "bytes")]
    levels = [space]
    if spec.inodes and st.f_files:
        inode_pct = 100.0 * (st.f_files - st.f_ffree) / st.f_files
        inodes = threshold_level(inode_pct, warn, fail)
        levels.append(inodes)
        words += f"; inodes {inode_pct:.0f}% used{_bound(inodes, warn, fail)}"
        perf.append(PerfDatum("inodes_used", inode_pct / 100, "ratio"))
    return Outcome(worst(levels), words, round(used_pct, 1), "percent", perfdata=tuple(perf))


class MemoryCheck:
    """The host's memory in use: MemTotal less MemAvailable, in percent."""

    kind = "memory"

    def __init__(self, spec: MemoryProbe, proc: Path = Path("/proc")) -> None:
        self._spec = spec
        self._meminfo = proc / "meminfo"

    async def check(self) -> Outcome:
        """Read /proc/meminfo and judge it."""
        return self.read()

    def read(self) -> Outcome:
        """The same, in place (/proc answers at once)."""
        fields: dict[str, int] = {}
        for line in self._meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[key] = int(parts[0]) * _KIB  # the kernel's "kB" is KiB
        total, available = fields["MemTotal"], fields["MemAvailable"]
        pct = 100.0 * (total - available) / total
        spec = self._spec
        level = threshold_level(pct, spec.warn_percent, spec.fail_percent)
        bound = _bound(level, spec.warn_percent, spec.fail_percent)
        words = f"memory: {pct:.0f}% used{bound}, {size(available)} available of {size(total)}"
        perf = (PerfDatum("used", pct / 100, "ratio"), PerfDatum("available", available, "bytes"))
        return Outcome(level, words, round(pct, 1), "percent", perfdata=perf)


class LoadCheck:
    """The host's load average over 1, 5 or 15 minutes, per CPU."""

    kind = "load"

    def __init__(
        self, spec: LoadProbe, proc: Path = Path("/proc"), cpus: int | None = None
    ) -> None:
        self._spec = spec
        self._loadavg = proc / "loadavg"
        self._cpus = cpus or os.cpu_count() or 1

    async def check(self) -> Outcome:
        """Read /proc/loadavg and judge it."""
        return self.read()

    def read(self) -> Outcome:
        """The same, in place (/proc answers at once)."""
        loads = [float(x) for x in self._loadavg.read_text().split()[:3]]
        spec = self._spec
        per_cpu = loads[(1, 5, 15).index(spec.minutes)] / self._cpus
        level = threshold_level(per_cpu, spec.warn_per_cpu, spec.fail_per_cpu)
        bound = _bound(level, spec.warn_per_cpu, spec.fail_per_cpu, "")
        words = f"load: {per_cpu:.2f} per CPU over {spec.minutes} min, {self._cpus} CPUs{bound}"
        perf = tuple(PerfDatum(f"load{m}", v) for m, v in zip((1, 5, 15), loads, strict=True))
        return Outcome(level, words, round(per_cpu, 2), "per_cpu", perfdata=perf)
