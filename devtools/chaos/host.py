"""The host's CPU and memory as the run reads them itself from /proc (not with the
supervisor's code): what its breaker pauses are held against (`verdict.breaker`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuTimes:
    """The host's CPU time from the first line of /proc/stat, in ticks."""

    busy: int
    total: int


def parse_cpu(stat: str) -> CpuTimes:
    """The "cpu" line: idle and iowait are idle; guest time is already in user and nice."""
    values = [int(v) for v in stat.splitlines()[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return CpuTimes(total - idle, total)


def cpu_percent(before: CpuTimes, after: CpuTimes) -> float:
    """How busy the host was between two readings, in percent of all its CPUs."""
    elapsed = after.total - before.total
    return 100.0 * (after.busy - before.busy) / elapsed if elapsed > 0 else 0.0


def memory_percent(meminfo: str) -> float:
    """The host's memory in use: MemTotal less MemAvailable, in percent of MemTotal."""
    fields = {}
    for line in meminfo.splitlines():
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0]) if rest.split() else 0
    total = fields["MemTotal"]
    return 100.0 * (total - fields["MemAvailable"]) / total if total else 0.0


class HostReader:
    """The host's CPU (busy since the previous reading) and memory, read from /proc."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._stat = proc / "stat"
        self._meminfo = proc / "meminfo"
        self._last = parse_cpu(self._stat.read_text())

    def read(self) -> tuple[float, float]:
        """CPU busy since the last call and memory in use, both in percent."""
        now = parse_cpu(self._stat.read_text())
        busy, self._last = cpu_percent(self._last, now), now
        return busy, memory_percent(self._meminfo.read_text())
