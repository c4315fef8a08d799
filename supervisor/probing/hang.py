"""A hang in words: what the probe saw, and the process as /proc showed it. Pure: no I/O.

When a watched probe fails by waiting (its timeout, or ended early on proof that the process
is stopped), the runner hands over what the probe saw and the readings of /proc it took while
the probe was overdue (`stuck.Reading`, read by `resources.ProcReader`: the same readings
that decide stuck or slow). This module says what a person asks at 3 a.m.: did it answer
before, how fast usually; is the process running, sleeping, stopped or in uninterruptible
sleep, where it waits, how many threads, did its CPU time move, which connections are open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from supervisor.probing.stuck import Reading
from supervisor.watch.cause import span

KIND = "hang"  # the cause's kind in events, beside the deaths' (exited, signal, oom-kill...)
SOURCE = "probe and /proc"  # where the evidence lines come from (a death's: journal, file)

# The states `ps` shows, in the words the readers use.
_STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "uninterruptible",
    "T": "stopped",
    "t": "stopped by a debugger",
    "Z": "zombie",
    "X": "dead",
    "I": "idle",
}


@dataclass(frozen=True, slots=True)
class ProbeSaw:
    """What the failing probe saw."""

    kind: str  # http, tcp, ...
    took_s: float  # how long it waited for an answer
    timeout_s: float
    last_good_ago_s: float | None  # since its last good answer; None: none since we started
    usual_s: float | None  # its usual answer time (median of the recent ones); None: unknown


@dataclass(frozen=True, slots=True)
class Hang:
    """A hang explained: one line for the alert's first line, and the facts behind it."""

    words: str  # "hung: pid 4242 stopped (T), no CPU time moved in 0.6 s"
    lines: tuple[str, ...]  # the probe, the process, its CPU, its connections

    def document(self) -> dict[str, object]:
        """As the `cause` of a failure event (the same shape as a death's)."""
        return {"kind": KIND, "words": self.words, "ranS": None}

    def log(self) -> dict[str, object]:
        """As the `log` of a failure event (the same shape as a death's last lines)."""
        return {"lines": list(self.lines), "source": SOURCE, "unavailable": ""}


def explain(saw: ProbeSaw, readings: Sequence[Reading]) -> Hang:
    """The hang that `saw` and `readings` (oldest first, at least one) tell of."""
    last = readings[-1]
    probe = probe_line(saw)
    if not last.found:
        words = f"hung: no process of the unit listens on port {last.port}"
        return Hang(words, (probe, f"process: none of the unit's holds port {last.port}"))
    who = _who(last.pids)
    state = state_words(last.states)
    cpu = cpu_words(readings)
    lines = [
        probe,
        f"process: {who} {state}{_waits(last.wchan)}, {_count(len(last.states), 'thread')}",
        f"CPU: {cpu} ({_count(len(readings), 'reading')} of /proc)",
        f"connections: {last.connections} open, {last.queued} waiting to be accepted "
        f"on port {last.port}",
    ]
    return Hang(f"hung: {who} {state}, {cpu}", tuple(lines))


def probe_line(saw: ProbeSaw) -> str:
    """`probe: http no answer after 2.0 s (timeout 2 s); last good answer 14 s ago; ...`."""
    said = f"probe: {saw.kind} no answer after {saw.took_s:.1f} s (timeout {saw.timeout_s:g} s)"
    if saw.last_good_ago_s is None:
        said += "; no good answer since the supervisor started"
    else:
        said += f"; last good answer {span(saw.last_good_ago_s)} ago"
    if saw.usual_s is not None:
        said += f"; usually answers in {_latency(saw.usual_s)}"
    return said


def state_words(states: Sequence[str]) -> str:
    """The process's state from its threads': `stopped (T)` when all are stopped, else the
    most telling one (uninterruptible, then running, then the main thread's)."""
    if not states:
        return "state unknown"
    if all(s in ("T", "t") for s in states):
        letter = "t" if all(s == "t" for s in states) else "T"
    elif "D" in states:
        letter = "D"
    elif "R" in states:
        letter = "R"
    else:
        letter = states[0]
    return f"{_STATES.get(letter, 'in state')} ({letter})"


def cpu_words(readings: Sequence[Reading]) -> str:
    """Whether the owners' CPU time moved between the first and the last reading."""
    first, last = readings[0], readings[-1]
    if len(readings) < 2:
        return "CPU time read once (nothing to compare)"
    if first.pids != last.pids:
        return "the process changed during the failure (CPU time not comparable)"
    window = last.at - first.at
    used_ns = last.cpu_ns - first.cpu_ns
    if used_ns <= 0:
        return f"no CPU time moved in {window:.1f} s"
    return f"CPU time moved {_latency(used_ns / 1e9)} in {window:.1f} s"


class Hangs:
    """The last hang seen of each target, with its wall-clock time (for the alert after it)."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[float, Hang]] = {}

    def seen(self, target: str, hang: Hang, at: float) -> None:
        """`target`'s probe failed hung at `at`."""
        self._latest[target] = (at, hang)

    def latest(self, target: str) -> tuple[float, Hang] | None:
        """The target's last hang and when it was seen, if any."""
        return self._latest.get(target)


def _waits(wchan: str) -> str:
    return f", waits in {wchan}" if wchan else ""


def _who(pids: tuple[int, ...]) -> str:
    return f"pid {pids[0]}" if len(pids) == 1 else "pids " + ", ".join(map(str, pids))


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _latency(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"
