"""Where a sandbox's files live, and how a client reaches its manager: environment,
``systemctl --user`` and a D-Bus ping. Knows nothing of the demo fleet or of starting the
manager (`devtools.sandbox.fleet`, `devtools.sandbox.manager`)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import subprocess
from pathlib import Path
from typing import Any

from devtools.sandbox.delegate import Account
from devtools.sandbox.host import TOOL_PATH
from devtools.sandbox.procs import SandboxError, wait_for


class ManagerClient:
    """The file layout under `root` and the calls that reach the manager living there."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.run_dir = self.root / "run"
        self.home = self.root / "home"
        self.config_home = self.home / ".config"
        self.unit_dir = self.config_home / "systemd" / "user"
        self.state_dir = self.home / "trading"
        self.logs_dir = self.root / "logs"
        self.state_file = self.root / "state.json"
        self.manager_log = self.root / "manager.log"
        # Set for an unprivileged sandbox: its manager answers only calls made as this account.
        self.account: Account | None = None

    def env(self) -> dict[str, str]:
        """What a client needs to reach this manager and its session bus."""
        return {
            "XDG_RUNTIME_DIR": str(self.run_dir),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.run_dir / 'bus'}",
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.config_home),
        }

    def _tool_env(self) -> dict[str, str]:
        # A clean environment: the caller's own bus address must not leak into our tools.
        return {"PATH": TOOL_PATH, "LANG": "C.UTF-8", **self.env()}

    def as_account(self) -> dict[str, Any]:
        """`subprocess` arguments that make a child a client this manager accepts."""
        return {} if self.account is None else self.account.as_user()

    def _manager_env(self) -> dict[str, str]:
        user = self.account.name if self.account else pwd.getpwuid(os.geteuid()).pw_name
        env = self._tool_env()
        del env["DBUS_SESSION_BUS_ADDRESS"]  # dbus.socket sets it for the units itself
        return {**env, "USER": user}

    def systemctl(
        self, *args: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``systemctl --user ARGS`` against this manager."""
        cmd = ["systemctl", "--user", *args]
        proc = subprocess.run(
            cmd,
            env=self._tool_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **self.as_account(),
        )
        if check and proc.returncode != 0:
            raise SandboxError(f"{shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """Unit properties from ``systemctl --user show`` (all of them when none are named)."""
        args = [f"--property={prop}" for prop in props]
        out = self.systemctl("show", *args, _unit(unit)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self, unit: str) -> int:
        """The unit's MainPID (0 when it has none)."""
        return int(self.show(unit, "MainPID")["MainPID"])

    def daemon_reload(self) -> None:
        """Make the manager re-read unit files."""
        self.systemctl("daemon-reload")

    def reset_failed(self) -> None:
        """Forget failed states and start-limit counters of all units."""
        self.systemctl("reset-failed")

    def install_unit(self, name: str, text: str, *, reload: bool = True) -> Path:
        """Write a user unit file (and daemon-reload unless told not to)."""
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        path = self.unit_dir / name
        path.write_text(text)
        if reload:
            self.daemon_reload()
        return path

    def wait_active(self, unit: str, timeout: float = 10.0) -> None:
        """Wait until `unit` is active (running)."""
        unit = _unit(unit)
        wait_for(
            lambda: (
                self.show(unit, "ActiveState", "SubState")
                == {"ActiveState": "active", "SubState": "running"}
            ),
            timeout,
            f"{unit} to be active (running)",
        )

    wait_for = staticmethod(wait_for)

    def bus_answers(self) -> bool:
        """True when org.freedesktop.systemd1 answers a call on our session bus."""
        cmd = ["busctl", "--user", "--timeout=2", "call", "org.freedesktop.systemd1"]
        cmd += ["/org/freedesktop/systemd1", "org.freedesktop.DBus.Peer", "Ping"]
        with contextlib.suppress(subprocess.TimeoutExpired):
            run = subprocess.run(
                cmd,
                env=self._tool_env(),
                capture_output=True,
                timeout=5,
                check=False,
                **self.as_account(),
            )
            return run.returncode == 0
        return False


def _unit(name: str) -> str:
    """A unit name: 'trader' becomes 'trader.service'; anything with a suffix stays."""
    return name if "." in name else f"{name}.service"
