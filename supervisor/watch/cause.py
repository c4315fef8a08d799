"""Why a unit's process died, in plain words, from what systemd says. Pure: no I/O.

systemd tells the story in a few properties read at the moment of death: `Result` (its
verdict: exit-code, signal, core-dump, oom-kill, watchdog, timeout, start-limit-hit, ...),
`ExecMainCode` (a CLD_* code: 1 exited, 2 killed, 3 dumped core) and `ExecMainStatus` (the
exit status or the signal number), and the main process's start and exit timestamps. What
it cannot say alone we add: the last memory reading, `MemoryMax`, and the OOM kills counted
in the unit's cgroup during this run (systemd can report the SIGKILL before the kernel's OOM
notice reaches it, so `Result=signal` with an OOM kill in the run is still an OOM kill).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3

# Linux signal numbers (the core stays clear of the `signal` module, an I/O library here).
_SIGNALS = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
    7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
    13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
    18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG",
    24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
    30: "SIGPWR", 31: "SIGSYS",
}  # fmt: skip


class Kind(StrEnum):
    """The cause of a death, as one word (what `/events` and the page filter on)."""

    EXITED = "exited"  # returned an exit status
    SIGNAL = "signal"  # killed by a signal
    CORE = "core-dump"  # killed by a signal and dumped core
    OOM = "oom-kill"  # the kernel's OOM killer
    WATCHDOG = "watchdog"  # systemd killed it: no WATCHDOG=1 in time
    TIMEOUT = "timeout"  # a start or stop took too long
    START_LIMIT = "start-limit-hit"  # too many starts in a short time
    OTHER = "other"  # a Result we have no words for (said as systemd says it)


@dataclass(frozen=True, slots=True)
class ExitFacts:
    """What systemd and the cgroup said about one run of a unit, read when it ended."""

    unit: str
    result: str  # systemd's Result
    code: int = 0  # ExecMainCode (CLD_*); 0: no process has exited yet
    status: int = 0  # ExecMainStatus: exit status or signal number
    started_usec: int = 0  # ExecMainStartTimestamp, wall clock, microseconds
    exited_usec: int = 0  # ExecMainExitTimestamp
    n_restarts: int = 0
    main_pid: int = 0  # ExecMainPID: the process that ran (its journal stream's _PID)
    invocation: str = ""  # InvocationID, hex: the journal's _SYSTEMD_INVOCATION_ID
    memory_bytes: int | None = None  # the last reading while it ran
    memory_max: int | None = None  # MemoryMax; None when unlimited
    oom_kills: int | None = None  # OOM kills in its cgroup during this run; None: unknown
    output_file: str = ""  # StandardOutput=file:/append: path, "" when none (or not told)
    output_kind: str = ""  # StandardOutput's kind: journal, file, append, truncate, ...
    unit_files: tuple[str, ...] = ()  # FragmentPath and DropInPaths: where the path is said


@dataclass(frozen=True, slots=True)
class Cause:
    """A death explained: a kind, a sentence, and the figures behind it."""

    kind: Kind
    words: str  # "exited with status 3 after 2 h 14 min"
    ran_s: float | None = None

    def document(self) -> dict[str, object]:
        """As JSON for events and the API."""
        return {"kind": self.kind.value, "words": self.words, "ranS": self.ran_s}


_UNSET = 2**64 - 1  # systemd's "not set" / "infinity" for 64-bit figures


def facts_from(unit: str, about: Mapping[str, Any], service: Mapping[str, Any]) -> ExitFacts:
    """ExitFacts from the Unit and Service interfaces' properties (plain values, by name)."""
    invocation = bytes(about.get("InvocationID", b"")).hex()
    unit_files = [str(about.get("FragmentPath", "")), *about.get("DropInPaths", [])]

    def number(name: str) -> int:
        return int(service.get(name, 0))

    def optional(name: str) -> int | None:
        value = int(service.get(name, _UNSET))
        return None if value == _UNSET else value

    return ExitFacts(
        unit=unit,
        result=str(service.get("Result", "")),
        code=number("ExecMainCode"),
        status=number("ExecMainStatus"),
        started_usec=number("ExecMainStartTimestamp"),
        exited_usec=number("ExecMainExitTimestamp"),
        n_restarts=number("NRestarts"),
        main_pid=number("ExecMainPID"),
        invocation=invocation,
        memory_bytes=optional("MemoryCurrent"),
        memory_max=optional("MemoryMax"),
        output_file=output_file(service),
        output_kind=str(service.get("StandardOutput", "")).partition(":")[0],
        unit_files=tuple(str(f) for f in unit_files if f),
    )


FILE_OUTPUTS = ("file", "append", "truncate")


def output_file(service: Mapping[str, Any]) -> str:
    """The path of `StandardOutput=file:/append:/truncate:` if D-Bus says it, else "".

    systemd 252 names only the kind over D-Bus ("append"), never the path: then the unit
    files tell it (`output_in_unit_files`). A "kind:path" spelling is accepted as well.
    """
    kind, _, path = str(service.get("StandardOutput", "")).partition(":")
    if kind not in FILE_OUTPUTS:
        return ""
    path = path or str(service.get("StandardOutputFileDescriptorName", ""))
    return path if path.startswith("/") else ""


def output_in_unit_files(texts: Sequence[str]) -> str:
    """The output file a unit's files set (the last `StandardOutput=` wins, as in systemd).

    "" when none is set or the path uses a specifier (`%h`) we would have to guess at.
    """
    found = ""
    for text in texts:
        for raw in text.splitlines():
            key, eq, value = raw.strip().partition("=")
            if eq and key.strip() == "StandardOutput":
                kind, _, path = value.strip().partition(":")
                found = path if kind in FILE_OUTPUTS else ""
    return found if found.startswith("/") and "%" not in found else ""


def signal_name(number: int) -> str:
    """`SIGKILL` for 9; `signal 40` for one without a name (real-time signals)."""
    return _SIGNALS.get(number, f"signal {number}")


def explain(facts: ExitFacts) -> Cause:
    """The cause of the death `facts` describe."""
    ran = _ran_s(facts)
    kind, words = _verdict(facts)
    if ran is not None and kind in (Kind.EXITED, Kind.SIGNAL, Kind.CORE, Kind.OOM):
        words += f" after {span(ran)}"
    return Cause(kind, words, ran)


def _verdict(f: ExitFacts) -> tuple[Kind, str]:
    if f.result == "oom-kill" or (f.oom_kills or 0) > 0:
        return Kind.OOM, "killed by the kernel's OOM killer" + _memory(f)
    if f.result == "watchdog":
        return Kind.WATCHDOG, "killed by its watchdog (no WATCHDOG=1 ping in time)"
    if f.result == "timeout":
        return Kind.TIMEOUT, "did not start or stop in time (timeout)"
    if f.result == "start-limit-hit":
        return Kind.START_LIMIT, "hit its start limit (too many starts in a short time)"
    if f.result == "core-dump" or f.code == CLD_DUMPED:
        return Kind.CORE, f"dumped core ({signal_name(f.status)})"
    if f.result == "signal" or f.code == CLD_KILLED:
        return Kind.SIGNAL, f"killed by {signal_name(f.status)}"
    if f.result == "exit-code" or f.code == CLD_EXITED:
        return Kind.EXITED, f"exited with status {f.status}"
    return Kind.OTHER, f"ended with result {f.result or 'unknown'}"


def _memory(f: ExitFacts) -> str:
    at = f" at {size(f.memory_bytes)}" if f.memory_bytes else ""
    limit = f" (MemoryMax {size(f.memory_max)})" if f.memory_max else ""
    return at + limit


def _ran_s(f: ExitFacts) -> float | None:
    if f.started_usec <= 0 or f.exited_usec < f.started_usec:
        return None  # not started, or a newer run already began: no honest figure
    return (f.exited_usec - f.started_usec) / 1_000_000


def span(seconds: float) -> str:
    """`45 s`, `3 min 12 s`, `2 h 14 min`, `3 d 4 h`: two units at most."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def size(n: int | None) -> str:
    """`1.9 GiB`, `512 MiB`, `800 KiB`, `12 B`."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def died(before_active: bool, active_state: str, result: str) -> bool:
    """True when a unit that was running ended badly (a failure worth explaining).

    A clean stop (result success) is not a death to explain; a unit that systemd restarts by
    itself passes through `activating` (auto-restart) or `failed` with the bad result set.
    """
    return before_active and active_state != "active" and result not in ("", "success")


@dataclass(frozen=True, slots=True)
class LastWords:
    """The last lines a run wrote, or why there are none."""

    lines: tuple[str, ...] = ()
    source: str = ""  # "journal" or "file /path"
    unavailable: str = ""  # one line: why nothing could be read

    def document(self) -> dict[str, object]:
        """As JSON for events and the API."""
        return {"lines": list(self.lines), "source": self.source, "unavailable": self.unavailable}


def bound(lines: Iterable[str], count: int, width: int, total: int) -> tuple[str, ...]:
    """The last `count` non-empty lines, each cut to `width`, all within `total` characters.

    Lines are kept from the end (the last words matter most): an older line that would
    overflow `total` is dropped, never a newer one.
    """
    kept: list[str] = []
    used = 0
    for raw in reversed(list(lines)):
        line = raw.rstrip("\r\n").replace("\x00", "")
        if not line.strip():
            continue
        if len(line) > width:
            line = line[: max(0, width - 1)] + "…"
        if len(kept) >= count or used + len(line) + 1 > total:
            break
        kept.append(line)
        used += len(line) + 1
    return tuple(reversed(kept))
