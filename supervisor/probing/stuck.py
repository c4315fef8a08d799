"""Stuck or slow: evidence from /proc that an unanswered probe will never be answered.

A fixed timeout cannot tell a hung process from a slow one, so it is paid three times
before `fail`, and a slow one can still be failed by it. While an http probe is overdue (past
what its answers normally take), the runner reads the processes that own the probed port's
listening socket, and this module judges the readings:

- **stopped**: every thread of every owner is stopped (`T`, `t`: SIGSTOP, a debugger) in
  every reading over `STOPPED_SPAN_S`: it cannot answer until someone continues it;
- **no progress**: over the whole timeout of a probe that timed out, the owners used next to
  no CPU, none of their threads was runnable, and connections waited in the accept queue
  the whole time without it shrinking: nobody is taking work, nobody is working.

Either makes the probe's failure final at once. Anything else (CPU moving, a thread
runnable, the queue drained, a reading missing) is a slow process: the configured
`failure_threshold` x `timeout_s` rule stays the last word, as before.

Pure: readings come in as data with their times (the adapter is `resources.ProcReader`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

FLOOR_S = 0.25  # never call a probe overdue sooner than this
FACTOR = 4.0  # overdue: this many times the slowest recent answer
REMEMBERED = 20  # recent answers the latency is learned from
READ_EVERY_S = 0.25  # readings while a probe is overdue
STOPPED_SPAN_S = 0.5  # stopped in every reading over at least this long
IDLE_CPU_SHARE = 0.01  # "next to no CPU": under 1 % of one core over the window
SLACK_S = 0.02  # timers fire a little early or late: spans are judged with this slack


@dataclass(frozen=True, slots=True)
class Reading:
    """One look at the owners of a probed port's listening socket, at monotonic time `at`."""

    at: float
    port: int
    pids: tuple[int, ...]  # the unit's processes holding a listening socket on the port
    stopped: bool  # every thread of every owner is stopped (T or t)
    runnable: bool  # some owner thread is running or waiting for a CPU (R)
    cpu_ns: int  # CPU time of the owners, all threads
    queued: int  # connections waiting in their accept queues
    # What a person asks of a hang (probing/hang.py words them; nothing here judges by them).
    states: tuple[str, ...] = ()  # every owner thread's state letter (R, S, D, T, ...)
    wchan: str = ""  # where the first owner's main thread waits in the kernel ("" unknown)
    connections: int = 0  # established TCP connections the owners hold

    @property
    def found(self) -> bool:
        """The unit owns a listening socket on the port (else nothing can be proved)."""
        return bool(self.pids)


class ListenerReader(Protocol):
    """Where readings come from (resources.ProcReader)."""

    def listener(self, control_group: str, port: int, at: float) -> Reading:
        """The unit's owners of a listening socket on `port`, read now."""


class Latencies:
    """A probe's recent answer times: when an unanswered probe is overdue."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self._recent: deque[float] = deque(maxlen=size)

    def answered(self, duration_s: float) -> None:
        """A probe was answered (pass or warn) after `duration_s`."""
        self._recent.append(duration_s)

    def usual(self) -> float | None:
        """The median of the recent answer times; None before any answer."""
        if not self._recent:
            return None
        ordered = sorted(self._recent)
        return ordered[len(ordered) // 2]

    def overdue_after(self, timeout_s: float) -> float:
        """Seconds after which an unanswered probe is overdue: start reading /proc.

        Never later than half the timeout, so there is time to gather evidence; before any
        answer is known, a quarter of the timeout.
        """
        if not self._recent:
            return timeout_s / 4
        return min(timeout_s / 2, max(FLOOR_S, FACTOR * max(self._recent)))


def stopped(readings: Sequence[Reading]) -> str | None:
    """Words saying the owners were stopped all along, if every reading over STOPPED_SPAN_S
    says so; else None."""
    if not _consistent(readings) or not all(r.stopped for r in readings):
        return None
    span = readings[-1].at - readings[0].at
    if span + SLACK_S < STOPPED_SPAN_S:
        return None
    return f"stuck: {_who(readings[-1])} stopped (state T) for {span:.1f} s, nothing answers"


def no_progress(readings: Sequence[Reading], timeout_s: float) -> str | None:
    """Words saying nothing moved over a timed-out probe's window, if so; else None.

    Called only when the probe has waited its whole timeout. The readings must span at
    least half of it (they start when the probe is overdue, at most half-way).
    """
    if not _consistent(readings):
        return None
    first, last = readings[0], readings[-1]
    span = last.at - first.at
    if span + SLACK_S < timeout_s / 2:
        return None
    if any(r.runnable or r.queued < 1 for r in readings):
        return None  # working, waiting for a CPU, or it took the waiting connections
    if any(b.queued < a.queued for a, b in pairwise(readings)):
        return None  # it accepted something meanwhile
    used_s = (last.cpu_ns - first.cpu_ns) / 1e9
    if used_s > IDLE_CPU_SHARE * span:
        return None
    return (
        f"stuck: {_who(last)} used {used_s * 1000:.0f} ms of CPU in {span:.1f} s while "
        f"{last.queued} connection(s) waited to be accepted on port {last.port}"
    )


def _consistent(readings: Sequence[Reading]) -> bool:
    """At least two readings, each finding the same owners (a restart proves nothing)."""
    if len(readings) < 2 or not readings[0].found:
        return False
    return all(r.pids == readings[0].pids for r in readings)


def _who(reading: Reading) -> str:
    pids = reading.pids
    if len(pids) == 1:
        return f"pid {pids[0]}"
    return "pids " + ", ".join(str(p) for p in pids)
