"""Faults put in place on the demo fleet, "serving again" as the bench sees it, and repair.

Every fault signals a process named by PID *and* start time (`devtools.sandbox.ProcId`),
through a pidfd, so a reused PID is never hit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devtools.bench.processes import spawn, stop_process
from devtools.bench.settings import POLL_S, REPO, SETTLE_TIMEOUT_S, BenchError
from devtools.demo import faults as demo_faults
from devtools.sandbox import ProcId, Sandbox, send_signal, wait_for
from supervisor.recovery import ports

STALL = demo_faults.signal_number(demo_faults.FAULTS["stall-heartbeat"].signal_name or "")


@dataclass
class Fault:
    """A fault put in place: whose new process we wait for, the old one, and when."""

    scenario: str
    program: str  # "dashboard" or "trader"
    old: ProcId
    t0: float  # monotonic time of the fault
    orphan: subprocess.Popen[Any] | None = None


def signal_unit(box: Sandbox, program: str, signum: int) -> tuple[ProcId, float, float]:
    """Signal `program`'s MainPID; the times (wall, monotonic) are taken just before the
    signal is sent."""
    pid = box.main_pid(program)
    proc = ProcId.of(pid, program) if pid > 0 else None
    if proc is None:
        raise BenchError(f"{program}.service has no live MainPID")
    wall, mono = time.time(), time.monotonic()
    if not send_signal(proc, signum):
        raise BenchError(f"{program}.service's MainPID {pid} exited before it was signalled")
    return proc, wall, mono


def serving_pid(box: Sandbox, program: str) -> int | None:
    """Who serves now: the pid in the dashboard's /health, or in the trader's last heartbeat."""
    if program == "dashboard":
        health = box.dashboard_health(timeout=0.25)
        pid = health.get("pid") if health else None
        return pid if isinstance(pid, int) else None
    beat = box.read_heartbeat(program)
    return beat.pid if beat else None


def served_again(box: Sandbox, fault: Fault) -> float | None:
    """Seconds from the fault until a new process serves, if it does now (else None).

    While the old process lives (hung, stalled) nothing new can serve: that is checked in
    /proc first, so a stopped dashboard is not flooded with connections.
    """
    if fault.old.alive():
        return None
    pid = serving_pid(box, fault.program)
    if pid is not None and pid != fault.old.pid:
        return time.monotonic() - fault.t0
    return None


def wait_served(box: Sandbox, fault: Fault, timeout: float) -> float | None:
    """`served_again`, polled until `timeout` seconds after the fault; None if it never is."""
    try:
        return wait_for(
            lambda: served_again(box, fault),
            fault.t0 + timeout - time.monotonic(),
            f"{fault.program} to serve again",
            interval=POLL_S,
        )
    except TimeoutError:
        return None


def start_orphan(box: Sandbox) -> subprocess.Popen[Any]:
    """`python -m devtools.demo orphan` on the dashboard's port, outside any unit."""
    port = box.dashboard_port
    cmd = [sys.executable, "-m", "devtools.demo", "orphan", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = spawn(cmd, stdout=subprocess.DEVNULL, env=env, cwd=REPO)
    wait_for(
        lambda: ports.listening_inodes(port) or proc.poll() is not None,
        10,
        f"the orphan to listen on port {port}",
        interval=POLL_S,
    )
    if proc.poll() is not None:
        raise BenchError(f"the orphan exited with {proc.returncode}: is port {port} taken?")
    return proc


def active_state(box: Sandbox, program: str) -> str:
    """The unit's ActiveState."""
    return box.show(program, "ActiveState")["ActiveState"]


def inject(
    box: Sandbox,
    scenario: str,
    pause: Callable[[], None] | None = None,
    resume: Callable[[], float] | None = None,
) -> Fault:
    """Put `scenario`'s fault in place.

    orphan: stop the dashboard, start an orphan on its port, start the dashboard so it fails.
    A watching tool would restart the stopped dashboard before the orphan binds, so it is
    paused (SIGSTOP) while this is set up; the time runs from SIGCONT, when it can first see
    the failed unit. Without a tool (systemd alone) it runs from the failing start.
    """
    if scenario == "dead":
        old, _wall, t0 = signal_unit(box, "dashboard", signal.SIGKILL)
        return Fault(scenario, "dashboard", old, t0)
    if scenario == "hung":
        old, _wall, t0 = signal_unit(box, "dashboard", signal.SIGSTOP)
        return Fault(scenario, "dashboard", old, t0)
    if scenario == "stale":
        old, _wall, t0 = signal_unit(box, "trader", STALL)
        return Fault(scenario, "trader", old, t0)
    pid = box.main_pid("dashboard")
    old_proc = ProcId.of(pid, "dashboard")
    if old_proc is None:
        raise BenchError("dashboard.service has no live MainPID")
    orphan = None
    if pause is not None:
        pause()
    try:
        box.systemctl("stop", "dashboard.service")
        orphan = start_orphan(box)
        t0 = time.monotonic()
        box.systemctl("start", "dashboard.service")
        if resume is not None:
            wait_for(
                lambda: active_state(box, "dashboard") == "failed",
                10,
                "dashboard.service to fail to start (orphan on its port)",
                interval=0.02,
            )
    finally:
        if resume is not None:
            t0 = resume()
    return Fault(scenario, "dashboard", old_proc, t0, orphan)


def repair(box: Sandbox, fault: Fault) -> None:
    """Undo what is left of a fault: the orphan gone, the unit running and ready."""
    if fault.orphan is not None:
        stop_process(fault.orphan)
    send_signal(fault.old, signal.SIGCONT)  # a hung one that still lives runs again
    if not box.ready(fault.program):
        box.reset_failed()
        box.systemctl("restart", f"{fault.program}.service")
    box.wait_ready(fault.program, SETTLE_TIMEOUT_S)
    box.reset_failed()


def describe_unit(box: Sandbox, program: str) -> str:
    """State, result, restarts and MainPID of the unit, for a "not recovered" note."""
    props = box.show(program, "ActiveState", "SubState", "Result", "NRestarts", "MainPID")
    return (
        f"{props['ActiveState']} ({props['SubState']}), result {props['Result']}, "
        f"NRestarts {props['NRestarts']}, MainPID {props['MainPID']}"
    )
