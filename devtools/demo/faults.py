"""Faults the demo programs show on demand: their names, how each is delivered, and the
in-process side that applies them.

=================  ==========================  ===================================================
fault              delivery                    effect
=================  ==========================  ===================================================
stall-heartbeat    SIGUSR1 to the MainPID      trader, position-monitor: stays alive, stops
                                               writing its heartbeat file
resume-heartbeat   SIGUSR2 to the MainPID      trader, position-monitor: writes it again, at once
grow-memory        SIGRTMIN to the MainPID     allocates and touches 64 MiB more, and keeps it
shrink-memory      SIGRTMIN+1 to the MainPID   releases all grown memory
hang               SIGRTMIN+2 to the MainPID   stays alive but stops working: the dashboard
                                               keeps its port open and never answers; heartbeat
                                               programs stop beating for good
crash              SIGRTMIN+3 to the MainPID   exits 1 at once
crash-on-start     creates the flag file       every later start exits 1 at once (crash loops)
                   <state-dir>/<program>
                   .crash-on-start
no-crash-on-start  removes that flag file      starts work again
stall-feed         SIGRTMIN+4 to the MainPID   dashboard: its market feed stays "connected" but
                                               no message arrives (last_message_at stops)
resume-feed        SIGRTMIN+5 to the MainPID   dashboard: messages arrive again, at once
deadlock           SIGRTMIN+6 to the MainPID   dashboard: its accepting thread and its feed
                                               thread take two locks in opposite order and
                                               deadlock; every handler thread then blocks on
                                               the state lock: the port stays open, nothing is
                                               accepted, no CPU is used
spin               SIGRTMIN+7 to the MainPID   dashboard: every request handler spins on the
                                               CPU forever and never answers (CPU moves)
slow               SIGRTMIN+8 to the MainPID   dashboard: slow but alive: every 6 s it holds
                                               its state lock for 1.5 s (nothing accepted or
                                               answered meanwhile, no CPU), then serves again
=================  ==========================  ===================================================

Faults without a program named apply to all three programs.

Signals go to the unit's MainPID as read with ``systemctl --user show -p MainPID``: we open a
pidfd on that PID, read MainPID again, and only signal through the pidfd when both agree, so a
PID reused in between is never signalled. By hand the same works with
``kill -USR1 "$(systemctl --user show -p MainPID --value trader.service)"``. ``kill -STOP``
is another way to hang any of them (systemd sends SIGCONT after SIGTERM, so it still stops).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from supervisor.errors import SupervisorError
from supervisor.recovery.ports import signal_pinned

PROGRAMS = ("trader", "dashboard", "position-monitor")
HEARTBEAT_PROGRAMS = ("trader", "position-monitor")
GROW_STEP_BYTES = 64 * 1024 * 1024


class FaultError(SupervisorError):
    """A fault that does not exist, does not apply to the program, or cannot be delivered."""


@dataclass(frozen=True)
class Fault:
    """One fault: its name, its signal (None: a flag file instead) and what it does."""

    name: str
    signal_name: str | None
    summary: str
    programs: tuple[str, ...] = PROGRAMS  # the programs it applies to


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault(
            "stall-heartbeat",
            "SIGUSR1",
            "stay alive, stop writing the heartbeat",
            HEARTBEAT_PROGRAMS,
        ),
        Fault("resume-heartbeat", "SIGUSR2", "write the heartbeat again", HEARTBEAT_PROGRAMS),
        Fault("grow-memory", "SIGRTMIN", "allocate and touch 64 MiB more, keep it"),
        Fault("shrink-memory", "SIGRTMIN+1", "release the grown memory"),
        Fault("hang", "SIGRTMIN+2", "stay alive, stop working (port stays open)"),
        Fault("crash", "SIGRTMIN+3", "exit 1 at once"),
        Fault("crash-on-start", None, "<program>.crash-on-start: later starts exit 1 at once"),
        Fault("no-crash-on-start", None, "remove <program>.crash-on-start again"),
        Fault("stall-feed", "SIGRTMIN+4", "feed connected but silent", ("dashboard",)),
        Fault("resume-feed", "SIGRTMIN+5", "feed messages arrive again", ("dashboard",)),
        Fault("deadlock", "SIGRTMIN+6", "handlers deadlocked, port open", ("dashboard",)),
        Fault("spin", "SIGRTMIN+7", "handlers spin on the CPU, never answer", ("dashboard",)),
        Fault("slow", "SIGRTMIN+8", "pause 1.5 s every 6 s, answer after", ("dashboard",)),
    )
}


def signal_number(name: str) -> int:
    """The number of a signal named like ``SIGUSR1`` or ``SIGRTMIN+2``."""
    base, _, offset = name.partition("+")
    return int(getattr(signal, base)) + int(offset or 0)


def crash_flag(state_dir: Path, program: str) -> Path:
    """The flag file that makes `program` exit 1 as soon as it starts."""
    return state_dir / f"{program}.crash-on-start"


def help_table() -> str:
    """The fault list for ``--help``."""
    rows = []
    for fault in FAULTS.values():
        how = fault.signal_name or "flag file"
        who = "all programs" if fault.programs == PROGRAMS else ", ".join(fault.programs)
        rows.append(f"  {fault.name:<18} {how:<12} {fault.summary} ({who})")
    return "\n".join(rows)


def check(program: str, name: str) -> Fault:
    """The fault called `name`, if it exists and applies to `program`."""
    if program not in PROGRAMS:
        raise FaultError(f"unknown program {program!r}; expected one of {', '.join(PROGRAMS)}")
    fault = FAULTS.get(name)
    if fault is None:
        raise FaultError(f"unknown fault {name!r}; expected one of {', '.join(FAULTS)}")
    if program not in fault.programs:
        raise FaultError(f"{name} applies to {', '.join(fault.programs)} only, not to {program}")
    return fault


def deliver(program: str, name: str, *, state_dir: Path, main_pid: Callable[[], int]) -> None:
    """Make `program` show fault `name`: a signal to its MainPID, or the crash-on-start flag.

    `main_pid` asks systemd for the unit's current MainPID (0 when it has none).
    """
    fault = check(program, name)
    if fault.signal_name is None:
        _set_crash_flag(crash_flag(state_dir, program), on=name == "crash-on-start")
        return
    _signal_main_pid(program, signal_number(fault.signal_name), main_pid)


def _set_crash_flag(flag: Path, *, on: bool) -> None:
    if on:
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text("exit 1 at start (remove this file, or use the no-crash-on-start fault)\n")
    else:
        flag.unlink(missing_ok=True)


def _signal_main_pid(program: str, signum: int, main_pid: Callable[[], int]) -> None:
    pid = main_pid()
    if pid <= 0:
        raise FaultError(f"{program}.service has no MainPID: is it running?")
    # Pinned by a pidfd: if MainPID still names it, we signal the right one even if the PID
    # were reused a moment later.
    if not signal_pinned(pid, signum, lambda: main_pid() == pid):
        raise FaultError(f"{program}: MainPID {pid} is gone or changed while delivering the fault")


def exit_if_crash_on_start(program: str, state_dir: Path) -> None:
    """Exit 1 right away when the crash-on-start flag is set for `program`."""
    flag = crash_flag(state_dir, program)
    if flag.exists():
        print(f"{program}: crash-on-start flag {flag} is set: exiting 1", file=sys.stderr)
        raise SystemExit(1)


class FaultState:
    """The faults a running demo program currently shows; set from its signal handlers."""

    def __init__(self, program: str) -> None:
        self.program = program
        self.stalled = False
        self.feed_stalled = False
        self.hung = False
        self.deadlocked = False
        self.spinning = False
        self.slow = False
        # Set whenever a fault arrives, so a waiting work loop reacts at once.
        self.wake = threading.Event()
        # What a program does at once, in the signal handler (its main thread), per fault.
        self.hooks: dict[str, Callable[[], None]] = {}
        self._ballast: list[bytes] = []

    def install(self) -> None:
        """Route every fault signal to `apply` (before the program announces readiness)."""
        for fault in FAULTS.values():
            if fault.signal_name is not None:
                signal.signal(signal_number(fault.signal_name), self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        for fault in FAULTS.values():
            if fault.signal_name is not None and signal_number(fault.signal_name) == signum:
                self.apply(fault.name)

    def apply(self, name: str) -> None:
        """Show fault `name` now."""
        print(f"{self.program}: fault {name}", flush=True)
        if name == "crash":
            sys.stderr.flush()
            os._exit(1)  # "crash" means now: no cleanup, no atexit handlers
        elif name == "grow-memory":
            # Multiplying a byte fills (touches) every page, so it really is resident.
            self._ballast.append(b"\x01" * GROW_STEP_BYTES)
        elif name == "shrink-memory":
            self._ballast.clear()
        else:
            self.stalled = {"stall-heartbeat": True, "resume-heartbeat": False}.get(
                name, self.stalled
            )
            self.feed_stalled = {"stall-feed": True, "resume-feed": False}.get(
                name, self.feed_stalled
            )
            self.hung = self.hung or name == "hang"
            self.deadlocked = self.deadlocked or name == "deadlock"
            self.spinning = self.spinning or name == "spin"
            self.slow = self.slow or name == "slow"
        self.wake.set()
        hook = self.hooks.get(name)
        if hook is not None:
            hook()
