"""What the sandbox needs from the host: preflight checks, its state file, unit-file quoting,
the manager's own words from the kernel log when it fails to start, log tails and a free
port."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devtools.sandbox.procs import (
    ProcId,
    SandboxError,
    SandboxUnavailable,
    _pid1_is_systemd,
)
from supervisor.runtime.state import write_atomic

SYSTEMD = Path("/usr/lib/systemd/systemd")
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUN_SYSTEMD_SYSTEM = Path("/run/systemd/system")
USER_UNIT_DIRS = (Path("/etc/systemd/user"), Path("/usr/lib/systemd/user"))
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the terminating NUL


# --- persisted state -------------------------------------------------------------------------


@dataclass
class _State:
    dashboard_port: int
    restart: str
    created_run_systemd_system: bool = False
    holder: ProcId | None = None
    manager: ProcId | None = None
    cgroup_base: str | None = None
    processes: list[ProcId] = field(default_factory=list)
    user: str | None = None  # an unprivileged sandbox's account (see `devtools.sandbox.delegate`)
    cgroups: list[str] = field(default_factory=list)  # the subtree delegated to it

    def manager_alive(self) -> bool:
        return self.manager is not None and self.manager.alive()

    def dump(self, path: Path) -> None:
        # Atomic: a crash never leaves half a state file.
        write_atomic(path, (json.dumps(asdict(self), indent=2) + "\n").encode(), durable=False)

    @classmethod
    def load(cls, path: Path) -> _State | None:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SandboxError(f"{path} is unreadable ({exc}); remove it by hand") from exc

        def proc(value: dict[str, object] | None) -> ProcId | None:
            return None if value is None else ProcId(**value)  # type: ignore[arg-type]

        return cls(
            dashboard_port=int(raw["dashboard_port"]),
            restart=str(raw["restart"]),
            created_run_systemd_system=bool(raw["created_run_systemd_system"]),
            holder=proc(raw["holder"]),
            manager=proc(raw["manager"]),
            cgroup_base=raw["cgroup_base"],
            processes=[p for p in map(proc, raw["processes"]) if p is not None],
            user=raw.get("user"),
            cgroups=list(raw.get("cgroups", [])),
        )


@dataclass(frozen=True)
class Heartbeat:
    """One reading of a heartbeat file."""

    pid: int
    mtime: float

    @property
    def age(self) -> float:
        """Seconds since the last beat."""
        return time.time() - self.mtime


# --- unit files ------------------------------------------------------------------------------


def _escape(value: str) -> str:
    """Escape systemd specifiers (%) and, for command lines, variable expansion ($)."""
    return value.replace("%", "%%").replace("$", "$$")


def _exec_word(arg: str) -> str:
    """One ExecStart= word, quoted only when it needs to be."""
    escaped = _escape(arg)
    if escaped and all(c.isalnum() or c in "@%+=:,./_-$" for c in escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _preflight(run_dir: Path) -> None:
    """Raise SandboxUnavailable when a user manager cannot start here, saying why."""
    if not os.access(SYSTEMD, os.X_OK):
        raise SandboxUnavailable(f"{SYSTEMD} is missing: systemd is not installed")
    if not any((d / "dbus.socket").exists() for d in USER_UNIT_DIRS):
        raise SandboxUnavailable(
            "no dbus.socket user unit (package dbus-user-session): the manager could not "
            "put org.freedesktop.systemd1 on a session bus"
        )
    for tool in ("systemctl", "busctl"):
        if shutil.which(tool, path=TOOL_PATH) is None:
            raise SandboxUnavailable(f"{tool} is not installed")
    if not RUN_SYSTEMD_SYSTEM.is_dir() and os.geteuid() != 0:
        raise SandboxUnavailable(
            f"{RUN_SYSTEMD_SYSTEM} is missing (PID 1 is not systemd) and only root may create "
            "it; systemd --user exits at once without it"
        )
    if len(str(run_dir / "systemd" / "private")) > _MAX_SOCKET_PATH:
        raise SandboxUnavailable(f"{run_dir} is too long a path for the manager's sockets")


def _ensure_run_systemd_system() -> bool:
    """Create /run/systemd/system when PID 1 is not systemd; True if we created it."""
    if RUN_SYSTEMD_SYSTEM.is_dir() or _pid1_is_systemd():
        return False
    try:
        RUN_SYSTEMD_SYSTEM.mkdir(mode=0o755, parents=True)
    except OSError as exc:
        raise SandboxUnavailable(
            f"cannot create {RUN_SYSTEMD_SYSTEM} ({exc}); systemd --user exits at once without it"
        ) from exc
    return True


def _kmsg_lines(pid: int, limit: int = 15) -> list[str]:
    """The last kernel-log lines the manager `pid` wrote (its --log-target)."""
    tag, lines = f"systemd[{pid}]: ", []
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return []
    with contextlib.closing(os.fdopen(fd, "rb", buffering=0)) as kmsg:
        while True:
            try:
                record = kmsg.read(8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # a record was overwritten: go on
                    continue
                break
            if not record:  # None (would block) or b"": the end
                break
            message = record.decode(errors="replace").split(";", 1)[-1].split("\n", 1)[0]
            if message.startswith(tag):
                lines.append(message)
    return lines[-limit:]


def tail(path: Path, lines: int = 15) -> list[str]:
    """The last `lines` lines of a log file; none when it cannot be read."""
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []
