"""Parsers of /proc text. Pure: the callers read the files (and handle a process gone)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/PID/stat we use."""

    state: str  # R, S, D, T, Z, X...
    ppid: int
    cpu_ticks: int  # utime + stime, in clock ticks
    start_ticks: int  # start time since boot: with the PID, it names one process

    @property
    def zombie(self) -> bool:
        """Exited, not yet reaped."""
        return self.state in ("Z", "X")


def parse_stat(text: str) -> ProcStat:
    """Parse /proc/PID/stat; raises ValueError on text that is not one."""
    # comm (field 2) may hold spaces and parentheses: the fields start after the last ')'.
    try:
        fields = text[text.rindex(")") + 2 :].split()
        return ProcStat(
            fields[0], int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19])
        )
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a /proc/PID/stat line: {text[:60]!r}") from exc


def parse_cgroup(text: str) -> str:
    """From /proc/PID/cgroup: the unified (0::) path, else systemd's own v1 hierarchy."""
    fallback = ""
    for line in text.splitlines():
        hierarchy, _, path = line.partition(":")[2].partition(":")
        if line.startswith("0::") and path not in ("", "/"):
            return path
        if hierarchy == "name=systemd":
            fallback = path
    return fallback
