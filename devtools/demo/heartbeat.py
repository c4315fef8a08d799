"""trader and position-monitor: write a heartbeat file every interval until told otherwise.

The file holds ``{"pid": ..., "time": ...}`` and is replaced atomically, so a reader never sees
it half written; its mtime is the time of the last beat.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from devtools.demo.faults import FaultState, exit_if_crash_on_start
from supervisor.runtime.state import write_atomic


def write_heartbeat(path: Path) -> None:
    """Write one beat: temporary file, then rename over the old one."""
    beat = json.dumps({"pid": os.getpid(), "time": time.time()}) + "\n"
    write_atomic(path, beat.encode(), mode=0o644, durable=False)


def run(program: str, heartbeat: Path, state_dir: Path, interval: float) -> int:
    """Beat until killed; see `devtools.demo.faults` for what can go wrong on purpose."""
    exit_if_crash_on_start(program, state_dir)
    faults = FaultState(program)
    faults.install()
    heartbeat.parent.mkdir(parents=True, exist_ok=True)
    print(f"{program}: pid {os.getpid()}, heartbeat {heartbeat} every {interval:g}s", flush=True)
    while True:
        if not (faults.stalled or faults.hung):
            write_heartbeat(heartbeat)
        # The period between beats; a fault signal sets `wake` so resume beats at once.
        faults.wake.wait(interval)
        faults.wake.clear()
