"""Parsers of /proc text. Pure: the callers read the files (and handle a process gone)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
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


@dataclass(frozen=True, slots=True)
class TcpTable:
    """What /proc/net/tcp (or tcp6) says of one port: its listeners, and some open connections."""

    listeners: list[Listener]  # LISTEN sockets on the port asked for (on every port: None)
    connected: set[int]  # inodes of the ESTABLISHED sockets among those asked for


_ESTABLISHED = "01"


def parse_tcp(
    lines: Iterable[str], port: int | None = None, among: Collection[int] = ()
) -> TcpTable:
    """/proc/net/tcp (or tcp6), header line and all, taken one line at a time.

    A busy host lists thousands of sockets, most in TIME_WAIT. Read whole, the table was a
    string and a list of every line at once, each hang's evidence a step in RSS that stayed
    (the soak: +1.3 MB at a hung dashboard with 1,445 TIME_WAIT lines). Here a line is split
    in five, and only a LISTEN line on `port` or an ESTABLISHED line any further. An
    ESTABLISHED socket is kept only if its inode is `among` (the caller's own sockets): a set
    of every connection on the host was the soak's last step under load.
    """
    listeners: list[Listener] = []
    connected: set[int] = set()
    rows = iter(lines)
    next(rows, None)  # the header
    for line in rows:
        head = line.split(None, 4)  # sl, local address, remote address, state, the rest
        if len(head) < 5:
            continue
        if head[3] == _LISTEN:
            listener = _listener(head[1], head[4], port)
            if listener is not None:
                listeners.append(listener)
        elif head[3] == _ESTABLISHED and among:
            inode = _inode(head[4].split())
            if inode in among:
                connected.add(inode)
    return TcpTable(listeners, connected)


def _listener(local: str, rest: str, port: int | None) -> Listener | None:
    """A LISTEN line's socket, if it is on `port` (any port: None) and has an inode."""
    try:
        on = int(local.rsplit(":", 1)[1], 16)
        if port is not None and on != port:
            return None
        fields = rest.split()  # tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, inode
        queued = int(fields[0].partition(":")[2], 16)  # connections waiting, in hex
        inode = _inode(fields)
    except (IndexError, ValueError):
        return None
    return Listener(on, inode, queued) if inode else None


def _inode(fields: list[str]) -> int:
    """The inode among the fields after the state; 0 when missing or malformed."""
    return int(fields[5]) if len(fields) > 5 and fields[5].isdigit() else 0


def parse_schedstat(text: str) -> int:
    """Nanoseconds on a CPU, from /proc/PID/task/TID/schedstat; ValueError if malformed."""
    try:
        return int(text.split(maxsplit=1)[0])
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a schedstat line: {text[:60]!r}") from exc
