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


_LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp{,6}


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening TCP socket from /proc/net/tcp or tcp6."""

    port: int
    inode: int
    queued: int  # rx_queue of a LISTEN socket: connections waiting to be accepted


def parse_listeners(text: str) -> list[Listener]:
    """The LISTEN sockets of /proc/net/tcp (or tcp6) text, header line and all."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _LISTEN:
            continue
        try:
            port = int(fields[1].rsplit(":", 1)[1], 16)
            queued = int(fields[4].partition(":")[2], 16)  # "tx_queue:rx_queue", in hex
            inode = int(fields[9])
        except (IndexError, ValueError):
            continue
        if inode:
            found.append(Listener(port, inode, queued))
    return found


_ESTABLISHED = "01"


def parse_connected(text: str) -> set[int]:
    """Inodes of the ESTABLISHED sockets of /proc/net/tcp (or tcp6) text: open connections."""
    found = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 10 and fields[3] == _ESTABLISHED and fields[9].isdigit():
            found.add(int(fields[9]))
    found.discard(0)
    return found


def parse_schedstat(text: str) -> int:
    """Nanoseconds on a CPU, from /proc/PID/task/TID/schedstat; ValueError if malformed."""
    try:
        return int(text.split(maxsplit=1)[0])
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a schedstat line: {text[:60]!r}") from exc
