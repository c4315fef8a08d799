"""The supervisor under test, run as systemd runs it: `supervisor run --config ...` with a real
NOTIFY_SOCKET (READY=1, WATCHDOG=1 read from it), WATCHDOG_USEC, the unit's Nice= and
restart delay taken from `units/sidecar-supervisor.service`, and a restart after it dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.chaos.record import Life
from devtools.sandbox import ProcId, send_signal

REPO = Path(__file__).resolve().parents[2]
SUPERVISOR_BIN = REPO / ".venv" / "bin" / "supervisor"
UNIT_FILE = REPO / "units" / "sidecar-supervisor.service"


@dataclass(frozen=True)
class UnitSettings:
    """What the installed unit tells systemd about running the supervisor."""

    watchdog_s: float
    restart_s: float
    nice: int

    @classmethod
    def read(cls, path: Path = UNIT_FILE) -> UnitSettings:
        """From the unit file the installer ships (one source of truth for both)."""
        text = path.read_text()

        def number(key: str, default: float) -> float:
            found = re.search(rf"^{key}=(\S+?)s?$", text, re.M)
            return float(found.group(1)) if found else default

        return cls(number("WatchdogSec", 0), number("RestartSec", 0.1), int(number("Nice", 0)))


def undelivered(state_file: Path) -> list[tuple[int, str]]:
    """(chat, text) of each message the state file holds undelivered ([] without a file)."""
    try:
        outbox = json.loads(state_file.read_text()).get("outbox", {})
        return [(int(m["chat_id"]), str(m["text"])) for m in outbox.get("messages", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []


class SupervisorProcess:
    """Starts, signals and restarts the supervisor; each run of it is a `Life`."""

    def __init__(
        self,
        config: Path,
        log: Path,
        env: dict[str, str],
        unit: UnitSettings,
        run_as: dict[str, Any] | None = None,
        *,
        state_file: Path | None = None,
    ) -> None:
        self.config = config
        self._state_file = state_file  # read at each spawn: what the new life inherits
        self._run_as = run_as or {}  # `subprocess` arguments: an unprivileged sandbox's account
        self.log = log
        self.unit = unit
        self.lives: list[Life] = []
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._notify_path = config.parent / "notify"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify_path.unlink(missing_ok=True)
        self._sock.bind(str(self._notify_path))
        if self._run_as:  # sending to a socket file needs write permission on it
            os.chown(self._notify_path, self._run_as["user"], self._run_as["group"])
        self._sock.settimeout(0.2)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="chaos-notify", daemon=True)
        self._reader.start()

    # --- one life ---------------------------------------------------------------------------

    def spawn(self) -> Life:
        """Start a new life (READY=1 comes later: see `ready`)."""
        env = {
            **self._env,
            "NOTIFY_SOCKET": str(self._notify_path),
            "WATCHDOG_USEC": str(int(self.unit.watchdog_s * 1e6)),
        }
        cmd = [str(SUPERVISOR_BIN), "run", "--config", str(self.config), "--log-level", "INFO"]
        inherited = undelivered(self._state_file) if self._state_file else []
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C at the terminal is ours to handle
                **self._run_as,
            )
        if self.unit.nice:
            with contextlib.suppress(OSError):  # gone already: its exit is recorded anyway
                os.setpriority(os.PRIO_PROCESS, proc.pid, self.unit.nice)
        life = Life(n=len(self.lives) + 1, pid=proc.pid, spawned=time.time(), inherited=inherited)
        with self._lock:
            self._proc = proc
            self.lives.append(life)
        return life

    @property
    def life(self) -> Life | None:
        """The current (or last) life."""
        return self.lives[-1] if self.lives else None

    def ready(self) -> bool:
        """True while the current life runs and has said READY=1."""
        life = self.life
        return life is not None and life.ready is not None and self.exit_code() is None

    def exit_code(self) -> int | None:
        """The current life's exit code once it ended (recorded in its Life)."""
        with self._lock:
            proc, life = self._proc, self.life
        if proc is None or life is None:
            return None
        code = proc.poll()
        if code is not None and life.exited is None:
            life.exited, life.exit_code = time.time(), code
        return code

    def signal(self, signum: int, why: str = "") -> bool:
        """Signal the current life; `why` is recorded when it is meant to end it."""
        life = self.life
        if life is None or self.exit_code() is not None:
            return False
        proc = ProcId.of(life.pid, "supervisor")
        if proc is None:
            return False
        if why:
            life.killed = why
        return send_signal(proc, signum)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGKILL after `timeout`); the exit code, None if it never ran."""
        with self._lock:
            proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.signal(signal.SIGTERM, "SIGTERM at the end of the run")
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL, "SIGKILL: did not stop on SIGTERM")
                proc.wait(5)
        return self.exit_code()

    def close(self) -> None:
        """Stop the process if it runs, and the notify reader."""
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.stop()
        self._closed.set()
        self._reader.join(2)
        self._sock.close()
        self._notify_path.unlink(missing_ok=True)

    # --- NOTIFY_SOCKET ----------------------------------------------------------------------

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data, _ = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.time()
            life = self.life
            if life is None:
                continue
            for line in data.decode(errors="replace").splitlines():
                if line == "READY=1" and life.ready is None:
                    life.ready = now
                elif line == "WATCHDOG=1":
                    life.watchdog.append(now)

    def watchdog_late(self, now: float) -> float:
        """Seconds past WatchdogSec since the current life's last sign of life (0: in time)."""
        life = self.life
        if life is None or life.ready is None or life.exited is not None:
            return 0.0
        last = life.watchdog[-1] if life.watchdog else life.ready
        return max(0.0, now - last - self.unit.watchdog_s)
