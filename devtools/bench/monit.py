"""Monit as the other watcher: `monit -I` with its own files, and its check per scenario at the
supervisor's period, timeout and failure count."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devtools.bench.processes import spawn, stop_process, tail
from devtools.bench.settings import (
    FAILURE_THRESHOLD,
    HEARTBEAT_MAX_AGE_S,
    PERIOD_S,
    POLL_S,
    TIMEOUT_S,
    BenchError,
)
from devtools.bench.watchers import Watcher
from devtools.sandbox import Sandbox, wait_for


class Monit(Watcher):
    """`monit -I` in the foreground with its own control, pid, id, state and log files."""

    def __init__(self, run_dir: Path, checks: str, period_s: float = PERIOD_S) -> None:
        self.dir = run_dir
        self.checks = checks
        self.period_s = period_s  # its cycle (`set daemon`)
        self.log = run_dir / "monit.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Write its control file, start it, and wait until it logs that it started."""
        rc = self.dir / "monitrc"
        rc.write_text(
            f"set daemon {self.period_s:g}\n"
            f"set pidfile {self.dir / 'monit.pid'}\n"
            f"set idfile {self.dir / 'monit.id'}\n"
            f"set statefile {self.dir / 'monit.state'}\n"
            f"set logfile {self.log}\n\n{self.checks}"
        )
        rc.chmod(0o600)  # monit refuses a control file others can read
        with (self.dir / "monit.out").open("ab") as out:
            self._proc = spawn(
                ["monit", "-I", "-c", str(rc)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
            )
        proc = self._proc
        wait_for(
            lambda: " started" in self.text() or proc.poll() is not None,
            10,
            "monit to start",
            interval=POLL_S,
        )
        if proc.poll() is not None:
            raise BenchError(
                f"monit exited with {proc.returncode}:\n{tail(self.dir / 'monit.out')}"
            )

    def text(self) -> str:
        """Its log so far."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def lines(self) -> list[str]:
        """Its log so far, by line."""
        return self.text().splitlines()

    def wait_ok(self, check: str, after: int) -> None:
        """Until monit logged that `check` is fine again (it acts only on state changes)."""

        def ok() -> bool:
            return any(
                f"'{check}'" in line and ("succeeded" in line or "is running" in line)
                for line in self.lines()[after:]
            )

        wait_for(
            ok,
            3 * (self.period_s + TIMEOUT_S),
            f"monit to log '{check}' as fine again",
            interval=0.1,
        )

    def stop(self) -> None:
        """Stop it (and reap it)."""
        if self._proc is not None:
            stop_process(self._proc)


def monit_checks(box: Sandbox, scenario: str) -> tuple[str, str]:
    """Monit's check for `scenario` (same period, timeout and failure count), and its name."""
    run = box.run_dir
    env = f"/usr/bin/env XDG_RUNTIME_DIR={run} DBUS_SESSION_BUS_ADDRESS=unix:path={run}/bus"

    def restart(unit: str) -> str:
        return f'exec "{env} /usr/bin/systemctl --user restart {unit}"'

    port = box.dashboard_port
    if scenario in ("dead", "orphan"):
        return "dashboard", (
            f'check process dashboard matching "devtools.demo dashboard --port {port}"\n'
            f"    if does not exist for 1 cycles then {restart('dashboard.service')}"
            " repeat every 1 cycles\n"
        )
    if scenario == "hung":
        return "dashboard-http", (
            "check host dashboard-http with address 127.0.0.1\n"
            f'    if failed port {port} protocol http request "/health"'
            f" with timeout {TIMEOUT_S:g} seconds for {FAILURE_THRESHOLD} cycles"
            f" then {restart('dashboard.service')}\n"
        )
    return "trader-heartbeat", (
        f"check file trader-heartbeat with path {box.heartbeat_path('trader')}\n"
        f"    if timestamp > {HEARTBEAT_MAX_AGE_S} seconds for {FAILURE_THRESHOLD} cycles"
        f" then {restart('trader.service')}\n"
    )
