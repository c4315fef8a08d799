"""The demo fleet in a sandbox: its unit files, how to tell each program is working, and its
faults. Starting and stopping the manager itself is `devtools.sandbox.manager`'s."""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path

from devtools.demo import faults as demo_faults
from devtools.sandbox.client import ManagerClient
from devtools.sandbox.host import Heartbeat, _escape, _exec_word, tail
from devtools.sandbox.procs import SandboxError, wait_for

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = demo_faults.PROGRAMS
UNITS = tuple(f"{program}.service" for program in PROGRAMS)
RESTART_VALUES = frozenset(
    {"no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"}
)
HEARTBEAT_FRESH_S = 2.5  # a beat every second: older than this means at least two were missed
START_TIMEOUT_S = 15.0


class DemoFleet(ManagerClient):
    """trader, dashboard and position-monitor as units of the manager under `root`."""

    # How long `up` waits for each demo unit to be ready.
    fleet_timeout = START_TIMEOUT_S

    def __init__(self, root: Path, *, dashboard_port: int = 5050, restart: str = "no") -> None:
        if restart not in RESTART_VALUES:
            raise ValueError(f"restart must be one of {sorted(RESTART_VALUES)}, not {restart!r}")
        if not 0 < dashboard_port < 65536:
            raise ValueError(f"bad dashboard port {dashboard_port}")
        super().__init__(root)
        self.dashboard_port = dashboard_port
        self.restart = restart
        self._faulted: set[str] = set()
        # What the demo units run: this checkout with our interpreter, unless an unprivileged
        # sandbox points them at its own copy (the account may not reach ours).
        self.python = Path(sys.executable)
        self.code_dir = REPO

    def unit_text(self, name: str) -> str:
        """The unit file of demo program `name`; tests may install edited variants."""
        program = _program(name)
        args = [str(self.python), "-m", "devtools.demo", program, *self._program_args(program)]
        log = self.logs_dir / f"{program}.log"
        return (
            "[Unit]\n"
            f"Description=sidecar-supervisor sandbox demo {program}\n"
            "# The default start limit (5 starts in 10 s) stays: tests see what production sees.\n"
            "\n[Service]\n"
            "Type=simple\n"
            f"ExecStart={' '.join(map(_exec_word, args))}\n"
            f"WorkingDirectory={_escape(str(self.code_dir))}\n"
            f'Environment="PYTHONPATH={_escape(str(self.code_dir))}" PYTHONUNBUFFERED=1\n'
            f"Restart={self.restart}\n"
            f"StandardOutput=append:{_escape(str(log))}\n"
            "StandardError=inherit\n"
        )

    def _program_args(self, program: str) -> list[str]:
        if program == "dashboard":
            return ["--port", str(self.dashboard_port), "--state-dir", str(self.state_dir)]
        return [
            "--heartbeat",
            str(self.heartbeat_path(program)),
            "--state-dir",
            str(self.state_dir),
        ]

    def heartbeat_path(self, name: str) -> Path:
        """The heartbeat file of trader or position-monitor."""
        program = _program(name)
        if program not in demo_faults.HEARTBEAT_PROGRAMS:
            raise ValueError(f"{program} writes no heartbeat")
        return self.state_dir / f"{program}.heartbeat"

    def read_heartbeat(self, name: str) -> Heartbeat | None:
        """The last beat of `name`, or None when there is none (yet)."""
        path = self.heartbeat_path(name)
        try:
            return Heartbeat(int(json.loads(path.read_text())["pid"]), path.stat().st_mtime)
        except (OSError, ValueError, KeyError):
            return None

    def dashboard_health(self, timeout: float = 1.0) -> dict[str, object] | None:
        """The dashboard's ``GET /health`` JSON, or None when it does not answer in time."""
        conn = http.client.HTTPConnection("127.0.0.1", self.dashboard_port, timeout=timeout)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            body = json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            conn.close()
        return body if response.status == 200 and isinstance(body, dict) else None

    def fault(self, unit_name: str, fault: str) -> None:
        """Make demo program `unit_name` show `fault` (see `devtools.demo.faults`)."""
        program = _program(unit_name)
        try:
            demo_faults.deliver(
                program, fault, state_dir=self.state_dir, main_pid=lambda: self.main_pid(program)
            )
        except demo_faults.FaultError as exc:
            raise SandboxError(str(exc)) from exc
        self._faulted.add(program)

    def ready(self, name: str) -> bool:
        """Active (running) and observably working: fresh heartbeat or /health from MainPID."""
        program = _program(name)
        props = self.show(program, "ActiveState", "SubState", "MainPID")
        if (props["ActiveState"], props["SubState"]) != ("active", "running"):
            return False
        pid = int(props["MainPID"])
        if program == "dashboard":
            health = self.dashboard_health()
            return health is not None and health.get("pid") == pid
        beat = self.read_heartbeat(program)
        return beat is not None and beat.pid == pid and beat.age < HEARTBEAT_FRESH_S

    def wait_ready(self, name: str, timeout: float = 10.0) -> None:
        """Wait until `name` is ready; the error quotes its state and log."""
        program = _program(name)
        try:
            wait_for(lambda: self.ready(program), timeout, f"{program}.service to be ready")
        except TimeoutError as exc:
            raise SandboxError(f"{exc}\n{self._unit_report(program)}") from exc

    def _unit_report(self, program: str) -> str:
        props = self.show(program, "ActiveState", "SubState", "Result", "ExecMainStatus")
        log = "\n".join(tail(self.logs_dir / f"{program}.log", 5))
        return f"{program}.service: {props}\n{program}.log:\n{log}"

    def _write_unit(self, program: str) -> bool:
        """Install the standard unit of `program`; True when the file changed."""
        path = self.unit_dir / f"{program}.service"
        text = self.unit_text(program)
        if path.exists() and path.read_text() == text:
            return False
        self.install_unit(path.name, text, reload=False)
        return True

    def _unit_line(self, program: str) -> str:
        """One line of `status` for a demo unit: state, MainPID, restarts, and its sign of life."""
        props = self.show(program, "ActiveState", "SubState", "MainPID", "NRestarts")
        head = f"{program + '.service':<26} {props['ActiveState']}/{props['SubState']:<8}"
        head += f" MainPID={props['MainPID']:<7} NRestarts={props['NRestarts']}"
        if program == "dashboard":
            health = self.dashboard_health()
            return f"{head}  /health: {'ok' if health else 'no answer'}"
        beat = self.read_heartbeat(program)
        return f"{head}  heartbeat: {f'{beat.age:.1f}s old' if beat else 'none'}"


def _program(name: str) -> str:
    """'trader' for 'trader' or 'trader.service'; only the demo programs."""
    program = name.removesuffix(".service")
    if program not in PROGRAMS:
        raise ValueError(f"{name!r} is not a demo unit ({', '.join(UNITS)})")
    return program
