"""Systemd's view of the units, as the run reads it itself (never through the supervisor):
MainPID, ExecMainPID and when it started, NRestarts. The verdict decides from these, the fault
log and the fake Bot API's messages when an alert was due (`devtools.chaos.due`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from devtools.chaos.observe import Feed, Poller
from devtools.chaos.record import Incarnation, UnitSample
from devtools.sandbox import Sandbox
from devtools.sandbox.procs import proc_start_time

UNITS_INTERVAL_S = 0.5
UNIT_PROPS = (
    "Id",
    "MainPID",
    "ExecMainPID",
    "ExecMainStartTimestampMonotonic",
    "NRestarts",
    "ActiveState",
    "SubState",
)


class UnitPoller(Poller):
    """systemctl --user show, twice a second: each new MainPID is a new incarnation, and every
    reading is kept (`Record.units`)."""

    def __init__(self, feed: Feed, box: Sandbox, targets: tuple[str, ...]) -> None:
        super().__init__("units", UNITS_INTERVAL_S, feed)
        self.box = box
        self.targets = targets
        self._seen: set[tuple[int, int]] = set()
        self._boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
        self._tick = os.sysconf("SC_CLK_TCK")
        # systemd's monotonic clock is CLOCK_MONOTONIC, ours too: this turns it into wall time
        # (once, so that one start reads the same in every poll).
        self._to_wall = time.time() - time.monotonic()

    def poll(self) -> None:
        """One reading of the three units."""
        at = time.time()
        units = [f"{t}.service" for t in self.targets]
        out = self.box.systemctl(
            "show", f"--property={','.join(UNIT_PROPS)}", *units, check=False, timeout=5
        )
        for block in out.stdout.split("\n\n"):
            sample = parse_unit(block, at, self._to_wall)
            if sample is None:
                continue
            started = self._incarnation(sample.target, sample.main_pid)
            self.feed.add("units", sample)
            with self.feed.lock:
                # After the incarnation is fed: the controller never sees a new MainPID
                # (a repair) before the new process (a sign of detection).
                self.feed.main_pid[sample.target] = sample.main_pid
                if started is not None:
                    self.feed.main_started[sample.target] = started
                self.feed.record.n_restarts[sample.target] = sample.n_restarts

    def _incarnation(self, target: str, pid: int) -> float | None:
        """When `pid` started (fed as a new incarnation the first time it is seen)."""
        start = proc_start_time(pid) if pid else None
        if start is None:
            return None
        started = self._boot + start / self._tick
        if (pid, start) not in self._seen:
            self._seen.add((pid, start))
            self.feed.add("incarnations", Incarnation(target, pid, started))
        return started


def parse_unit(block: str, at: float, to_wall: float) -> UnitSample | None:
    """One unit's block of `systemctl show` (None: not a unit's block)."""
    fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
    if "Id" not in fields:
        return None

    def number(name: str) -> int:
        value = fields.get(name, "")
        return int(value) if value.isdigit() else 0

    mono_us = number("ExecMainStartTimestampMonotonic")
    return UnitSample(
        at,
        fields["Id"].removesuffix(".service"),
        number("MainPID"),
        number("ExecMainPID"),
        to_wall + mono_us / 1e6 if mono_us else 0.0,
        number("NRestarts"),
        f"{fields.get('ActiveState', '')}/{fields.get('SubState', '')}",
    )
