"""A throw-away systemd user manager running the demo trading fleet, for tests and demos.

``Sandbox(root).up()`` starts a real ``systemd --user`` with everything under `root`::

    root/run/                      XDG_RUNTIME_DIR (0700): systemd/private, bus (dbus.socket)
    root/home/                     HOME
    root/home/.config/             XDG_CONFIG_HOME; units in home/.config/systemd/user/
    root/home/trading/             heartbeat files and crash-on-start flags of the demo programs
    root/logs/<program>.log        stdout/stderr of each demo unit
    root/manager.log               stdout/stderr of the manager (nearly empty, see below)
    root/state.json                PIDs with /proc start times, cgroup base, what we created

then installs and starts ``trader.service``, ``dashboard.service`` and
``position-monitor.service`` (``python -m supervisor.demo ...``, see `supervisor.demo`) and
waits until each is active *and* observably working (fresh heartbeat, /health answering).
``down()`` stops it all and removes the files. ``python -m supervisor.sandbox up|down|status|env``
does the same from a shell; ``eval "$(scripts/sandbox.sh env)"`` points ``systemctl --user``
and D-Bus clients at it.

How it copes with this kind of host (Debian 12, systemd 252, root, PID 1 not systemd, cgroup v1
hybrid; see DESIGN.md "Testing against the real thing"):

- ``systemd --user`` exits at once (silently) unless ``/run/systemd/system`` exists. We create
  it only when PID 1 is not systemd and it is missing, record that, and remove it on ``down``.
- The session bus is never started by hand: the manager's own ``dbus.socket`` takes
  ``$XDG_RUNTIME_DIR/bus`` and we poll until ``org.freedesktop.systemd1`` answers on it.
- The manager logs to the kernel ring buffer (``--log-target=kmsg``): as a user instance it
  sends ``console`` output to /dev/console, not to its stderr, and ``SYSTEMD_LOG_*`` variables
  would leak into every unit. Error messages about a failed start quote manager.log and the
  manager's kmsg lines.
- One sandbox per machine: on cgroup v1 the manager behaves as if it owned the cgroup root
  (its units land in /app.slice, /session.slice). ``up`` takes an exclusive ``flock`` on
  `LOCK_PATH` and writes its root into the file. systemd closes every inherited descriptor at
  start-up, so the lock descriptor is handed to a tiny ``sh`` that runs the manager as its
  child and waits for it: the lock is held exactly as long as the manager lives, even when
  ``up`` ran from a short-lived CLI.

Teardown safety: a process is only ever signalled through a pidfd, after checking that its PID
still has the start time we recorded (`ProcId`), so a reused PID is never hit. Besides the
recorded PIDs, ``down`` sweeps processes whose systemd cgroup lies under the manager's
app.slice, session.slice or background.slice (this catches units that outlived a SIGKILLed
manager), but only when all of these hold: we hold the machine lock (so no other sandbox's
manager can be using those cgroups), state.json recorded our manager's cgroup base (the
parent of its ``init.scope``), the process runs under our UID, started after our manager did,
and is neither PID 1 nor ourselves. A ``systemd --user`` started by hand *outside* this module
would share /app.slice on such a host: do not run one next to a sandbox.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import http.client
import json
import os
import posixpath
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from supervisor.demo import faults as demo_faults
from supervisor.errors import SupervisorError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO / ".sandbox"
LOCK_PATH = Path("/tmp/sidecar-supervisor-sandbox.lock")
SYSTEMD = Path("/usr/lib/systemd/systemd")
RUN_SYSTEMD_SYSTEM = Path("/run/systemd/system")
USER_UNIT_DIRS = (Path("/etc/systemd/user"), Path("/usr/lib/systemd/user"))
PROGRAMS = demo_faults.PROGRAMS
UNITS = tuple(f"{program}.service" for program in PROGRAMS)
RESTART_VALUES = frozenset(
    {"no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"}
)
MANAGER_ARGS = ("--user", "--log-target=kmsg", "--log-level=notice")
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HEARTBEAT_FRESH_S = 2.5  # a beat every second: older than this means at least two were missed
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0
# Where the manager puts unit processes, relative to the parent of its own init.scope.
_UNIT_SLICES = ("app.slice", "session.slice", "background.slice")
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the terminating NUL

T = TypeVar("T")


class SandboxError(SupervisorError):
    """The sandbox could not do what was asked (lock taken, unit not ready, bad state)."""


class SandboxUnavailable(SandboxError):  # noqa: N818 - the name callers already use
    """A systemd user manager cannot run here; the message says exactly why."""


# --- processes, named by PID and start time -------------------------------------------------


def _proc_stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: the fields start after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def proc_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot; None if gone or a zombie."""
    fields = _proc_stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of /proc/PID/stat, counted after comm


def _parent_pid(pid: int) -> int | None:
    fields = _proc_stat_fields(pid)
    return None if fields is None else int(fields[1])


@dataclass(frozen=True)
class ProcId:
    """A process named by PID *and* start time, so a reused PID is never taken for it."""

    pid: int
    start: int
    what: str = ""

    @classmethod
    def of(cls, pid: int, what: str = "") -> ProcId | None:
        """The process `pid` is now, or None when there is none."""
        start = proc_start_time(pid)
        return None if start is None else cls(pid, start, what)

    def alive(self) -> bool:
        """True while this very process exists (a zombie counts as gone)."""
        return proc_start_time(self.pid) == self.start


def send_signal(proc: ProcId, signum: int) -> bool:
    """Signal `proc` if it is still the process we recorded; False when it is gone.

    The pidfd pins whatever process had the PID when opened; the start-time check then proves
    it is ours, and a signal through the pidfd cannot reach a successor that reuses the PID.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return False
    try:
        if proc_start_time(proc.pid) != proc.start:
            return False
        signal.pidfd_send_signal(pidfd, signum)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)


def wait_for(
    predicate: Callable[[], T | None], timeout: float, what: str, *, interval: float = 0.05
) -> T:
    """Poll `predicate` until it returns something truthy and return that.

    Raises TimeoutError naming `what` once `timeout` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(interval, remaining))


def terminate(procs: Iterable[ProcId], timeout: float = 5.0) -> None:
    """SIGTERM (and SIGCONT, so a stopped one can act on it) then SIGKILL what is left."""
    live = [proc for proc in procs if proc.alive()]
    for sig in (signal.SIGTERM, signal.SIGCONT):
        for proc in live:
            send_signal(proc, sig)
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not any(p.alive() for p in live), timeout, "processes to exit")
        return
    for proc in live:
        send_signal(proc, signal.SIGKILL)
    wait_for(lambda: not any(p.alive() for p in live), timeout, "killed processes to vanish")


def _systemd_cgroup(pid: int) -> str | None:
    """The cgroup systemd tracks `pid` in: the name=systemd hierarchy on v1, else the v2 one."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    paths = dict(line.split(":", 2)[1:] for line in lines if line.count(":") >= 2)
    return paths.get("name=systemd", paths.get(""))


def _cgroup_base(manager_pid: int) -> str | None:
    """Parent of the manager's init.scope: its units live in slices below it."""
    path = _systemd_cgroup(manager_pid)
    if path is None or posixpath.basename(path) != "init.scope":
        return None  # an unknown layout: do not guess which cgroups are ours
    return posixpath.dirname(path)


def _pids() -> list[int]:
    with os.scandir("/proc") as entries:
        return [int(entry.name) for entry in entries if entry.name.isdigit()]


def _uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def unit_cgroup_members(base: str, since: int) -> list[ProcId]:
    """Our-UID processes started at or after `since` in the unit slices below `base`."""
    prefixes = tuple(posixpath.join(base, s) + "/" for s in _UNIT_SLICES)
    found = []
    for pid in _pids():
        path = _systemd_cgroup(pid)
        if pid in (1, os.getpid()) or path is None or not (path + "/").startswith(prefixes):
            continue
        proc = ProcId.of(pid, f"in cgroup {path}")
        if proc and proc.start >= since and _uid_of(pid) == os.geteuid():
            found.append(proc)
    return found


def _remove_unit_cgroups(base: str) -> None:
    """rmdir the (now empty) unit cgroups a killed manager left in every hierarchy."""
    hierarchies = [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()]
    for hierarchy in hierarchies:
        for slice_name in _UNIT_SLICES:
            top = hierarchy / base.lstrip("/") / slice_name
            if not top.is_dir():
                continue
            for dirpath, _dirs, _files in os.walk(top, topdown=False):
                with contextlib.suppress(OSError):  # busy or gone: it is not ours to force
                    os.rmdir(dirpath)


def _pid1_is_systemd() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


# --- the machine-wide lock -------------------------------------------------------------------


def _open_lock() -> int:
    try:
        # /tmp is world-writable: never follow a planted symlink, never use another's file.
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise SandboxError(f"cannot open the sandbox lock {LOCK_PATH}: {exc}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise SandboxError(f"{LOCK_PATH} is not a regular file of ours: remove it")
    return fd


def _try_lock(owner: Path) -> int | None:
    """Take the machine lock and write `owner` into it; None when another process holds it."""
    fd = _open_lock()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{owner}\n".encode(), 0)
    return fd


def _release_lock(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.close(fd)


def lock_owner() -> str:
    """The root of the sandbox that holds (or last held) the machine lock, or ''."""
    try:
        return LOCK_PATH.read_text().strip()
    except OSError:
        return ""


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

    def manager_alive(self) -> bool:
        return self.manager is not None and self.manager.alive()

    def dump(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)  # atomic: a crash never leaves half a state file

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


def _tail(path: Path, lines: int = 15) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


class Sandbox:
    """A systemd user manager with the demo fleet, all under `root`. See the module doc."""

    # How long `up` waits for each demo unit to be ready.
    fleet_timeout = START_TIMEOUT_S

    def __init__(self, root: Path, *, dashboard_port: int = 5050, restart: str = "no") -> None:
        if restart not in RESTART_VALUES:
            raise ValueError(f"restart must be one of {sorted(RESTART_VALUES)}, not {restart!r}")
        if not 0 < dashboard_port < 65536:
            raise ValueError(f"bad dashboard port {dashboard_port}")
        self.root = root.resolve()
        self.dashboard_port = dashboard_port
        self.restart = restart
        self.run_dir = self.root / "run"
        self.home = self.root / "home"
        self.config_home = self.home / ".config"
        self.unit_dir = self.config_home / "systemd" / "user"
        self.state_dir = self.home / "trading"
        self.logs_dir = self.root / "logs"
        self.state_file = self.root / "state.json"
        self.manager_log = self.root / "manager.log"
        self._holder: subprocess.Popen[bytes] | None = None
        self._faulted: set[str] = set()

    @classmethod
    def attach(
        cls, root: Path, *, dashboard_port: int | None = None, restart: str | None = None
    ) -> Sandbox:
        """A Sandbox for `root` with the settings state.json recorded, unless overridden."""
        state = _State.load(root.resolve() / "state.json")
        return cls(
            root,
            dashboard_port=dashboard_port or (state.dashboard_port if state else 5050),
            restart=restart or (state.restart if state else "no"),
        )

    # --- environment and systemctl ---------------------------------------------------------

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

    def _manager_env(self) -> dict[str, str]:
        user = pwd.getpwuid(os.geteuid()).pw_name
        env = self._tool_env()
        del env["DBUS_SESSION_BUS_ADDRESS"]  # dbus.socket sets it for the units itself
        return {**env, "USER": user}

    def systemctl(
        self, *args: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``systemctl --user ARGS`` against this manager."""
        cmd = ["systemctl", "--user", *args]
        proc = subprocess.run(
            cmd, env=self._tool_env(), capture_output=True, text=True, timeout=timeout, check=False
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
                cmd, env=self._tool_env(), capture_output=True, timeout=5, check=False
            )
            return run.returncode == 0
        return False

    # --- the demo fleet --------------------------------------------------------------------

    def unit_text(self, name: str) -> str:
        """The unit file of demo program `name`; tests may install edited variants."""
        program = _program(name)
        args = [sys.executable, "-m", "supervisor.demo", program, *self._program_args(program)]
        log = self.logs_dir / f"{program}.log"
        return (
            "[Unit]\n"
            f"Description=sidecar-supervisor sandbox demo {program}\n"
            "# The default start limit (5 starts in 10 s) stays: tests see what production sees.\n"
            "\n[Service]\n"
            "Type=simple\n"
            f"ExecStart={' '.join(map(_exec_word, args))}\n"
            f"WorkingDirectory={_escape(str(REPO))}\n"
            f'Environment="PYTHONPATH={_escape(str(REPO))}" PYTHONUNBUFFERED=1\n'
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
        """Make demo program `unit_name` show `fault` (see `supervisor.demo.faults`)."""
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
        log = "\n".join(_tail(self.logs_dir / f"{program}.log", 5))
        return f"{program}.service: {props}\n{program}.log:\n{log}"

    def _write_unit(self, program: str) -> bool:
        """Install the standard unit of `program`; True when the file changed."""
        path = self.unit_dir / f"{program}.service"
        text = self.unit_text(program)
        if path.exists() and path.read_text() == text:
            return False
        self.install_unit(path.name, text, reload=False)
        return True

    def _ensure_fleet(self, restart: Iterable[str] = ()) -> None:
        """Standard units installed, each running and ready; restart those in `restart`."""
        changed = {p for p in PROGRAMS if self._write_unit(p)}
        if changed:
            self.daemon_reload()
        todo = {*restart, *changed}
        todo |= {p for p in PROGRAMS if p not in todo and not self.ready(p)}
        if todo:
            self.systemctl("restart", *sorted(map(_unit, todo)), check=False)
        for program in PROGRAMS:
            self.wait_ready(program, self.fleet_timeout)
        self._record_processes()

    def restore_fleet(self) -> None:
        """Undo what tests did: flags cleared, failures reset, faulted units restarted.

        Also brings the sandbox up again when a test took it down.
        """
        if not self.is_up():
            self.up()
            return
        for program in PROGRAMS:
            demo_faults.crash_flag(self.state_dir, program).unlink(missing_ok=True)
        # The start limit counts manual restarts too: forget it before restarting.
        self.reset_failed()
        self._ensure_fleet(restart=self._faulted)
        self._faulted.clear()

    # --- lifecycle -------------------------------------------------------------------------

    def is_up(self) -> bool:
        """True while the manager recorded in state.json runs (PID and start time match)."""
        state = _State.load(self.state_file)
        return state is not None and state.manager_alive()

    def up(self) -> None:
        """Start the manager and the demo fleet, or make sure they run when already up."""
        _preflight(self.run_dir)
        lock_fd = _try_lock(self.root)
        if lock_fd is None:
            self._up_again()
            return
        try:
            stale = _State.load(self.state_file)
            if stale is not None:  # a manager that died without `down`: clean up after it
                self._teardown(stale, lock_held=True)
            self._start(lock_fd)
        except BaseException:
            os.ftruncate(lock_fd, 0)
            raise
        finally:
            os.close(lock_fd)  # the manager's holder keeps its own copy of the lock

    def _up_again(self) -> None:
        owner = lock_owner()
        if owner != str(self.root):
            raise SandboxError(
                f"another sandbox is up on this machine: {owner or 'an unknown owner'} holds "
                f"{LOCK_PATH} (only one at a time: on cgroup v1 its manager owns the cgroup "
                "root); bring it down first"
            )
        state = _State.load(self.state_file)
        if state is None or not state.manager_alive():
            raise SandboxError(f"{LOCK_PATH} is held for {owner} but its manager is not running")
        self._ensure_fleet()

    def _start(self, lock_fd: int) -> None:
        self._make_dirs()
        for program in PROGRAMS:
            self._write_unit(program)  # before the manager starts: no daemon-reload needed
        state = _State(self.dashboard_port, self.restart)
        state.created_run_systemd_system = _ensure_run_systemd_system()
        state.dump(self.state_file)
        try:
            self._spawn_manager(state, lock_fd)
            self._wait_manager(state)
            self.systemctl("start", *UNITS, check=False)
            for program in PROGRAMS:
                self.wait_ready(program, self.fleet_timeout)
            self._record_processes()
        except BaseException:
            self._teardown(state, lock_held=True)
            raise

    def _make_dirs(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)  # stale sockets would confuse clients
        for path in (self.run_dir, self.unit_dir, self.state_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)  # systemd refuses a runtime dir others can enter

    def _spawn_manager(self, state: _State, lock_fd: int) -> None:
        # `sh` keeps the lock descriptor and waits for the manager, which closes its own copy.
        cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sandbox-lock-holder", str(SYSTEMD)]
        with self.manager_log.open("ab") as log:
            self._holder = subprocess.Popen(
                [*cmd, *MANAGER_ARGS],
                env=self._manager_env(),
                pass_fds=(lock_fd,),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        holder = self._holder
        state.holder = ProcId.of(holder.pid, "lock holder (sh)")
        state.manager = wait_for(
            lambda: self._forked_manager(holder), 5.0, "the holder to fork systemd --user"
        )
        state.dump(self.state_file)

    def _forked_manager(self, holder: subprocess.Popen[bytes]) -> ProcId | None:
        if holder.poll() is not None:
            raise SandboxUnavailable(self._exit_report(None, holder.returncode))
        children = [pid for pid in _pids() if _parent_pid(pid) == holder.pid]
        return ProcId.of(children[0], "systemd --user") if children else None

    def _wait_manager(self, state: _State) -> None:
        manager = state.manager
        assert manager is not None  # set by _spawn_manager

        def answers() -> bool:
            if not manager.alive():
                raise SandboxUnavailable(self._exit_report(manager, self._holder_status()))
            return self.systemctl("show", "--property=Version", check=False).returncode == 0

        try:
            wait_for(answers, START_TIMEOUT_S, "systemctl --user to answer")
            wait_for(self.bus_answers, START_TIMEOUT_S, "org.freedesktop.systemd1 on the bus")
        except TimeoutError as exc:
            raise SandboxUnavailable(f"{exc}\n{self._manager_logs(manager.pid)}") from exc
        state.cgroup_base = _cgroup_base(manager.pid)
        state.dump(self.state_file)

    def _holder_status(self) -> int | None:
        return None if self._holder is None else self._holder.wait(timeout=5)

    def _exit_report(self, manager: ProcId | None, status: int | None) -> str:
        pid = manager.pid if manager else None
        hint = ""
        if not RUN_SYSTEMD_SYSTEM.is_dir():
            hint = f" ({RUN_SYSTEMD_SYSTEM} is missing: systemd --user exits at once without it)"
        head = f"systemd --user exited during start-up with status {status}{hint}"
        return f"{head}\n{self._manager_logs(pid)}"

    def _manager_logs(self, pid: int | None) -> str:
        log = _tail(self.manager_log)
        kmsg = _kmsg_lines(pid) if pid else []
        return "\n".join(
            [f"{self.manager_log} (tail):", *log, "manager's kernel log lines:", *kmsg]
        )

    def processes(self) -> list[ProcId]:
        """Every live process of this sandbox: holder, manager, and all in its unit cgroups."""
        state = _State.load(self.state_file)
        if state is None:
            return []
        procs = [p for p in (state.holder, state.manager) if p is not None and p.alive()]
        if state.manager is not None and state.cgroup_base is not None:
            procs += unit_cgroup_members(state.cgroup_base, state.manager.start)
        return procs

    def _record_processes(self) -> None:
        state = _State.load(self.state_file)
        if state is None or state.manager is None or state.cgroup_base is None:
            return
        # Keep earlier records too: a process that left the cgroups is still ours to stop.
        found = [*state.processes, *unit_cgroup_members(state.cgroup_base, state.manager.start)]
        unique = {(p.pid, p.start): p for p in found if p.alive()}
        state.processes = list(unique.values())
        state.dump(self.state_file)

    def down(self) -> None:
        """Stop everything `up` started and remove the sandbox's files; safe when not up."""
        state = _State.load(self.state_file)
        if state is None:
            self._remove_files()
            return
        self._teardown(state, lock_held=False)

    def _teardown(self, state: _State, *, lock_held: bool) -> None:
        if state.manager is not None and state.manager.alive():
            self._stop_manager(state.manager)
        lock_fd = None if lock_held else self._lock_after_manager()
        owned = lock_held or lock_fd is not None
        try:
            victims = [*state.processes, *([state.holder] if state.holder else [])]
            if owned and state.manager is not None and state.cgroup_base is not None:
                victims += unit_cgroup_members(state.cgroup_base, state.manager.start)
            terminate(victims)
            if owned and state.cgroup_base is not None:
                _remove_unit_cgroups(state.cgroup_base)
            if owned and state.created_run_systemd_system and not _pid1_is_systemd():
                with contextlib.suppress(OSError):  # rmdir: only if still empty
                    RUN_SYSTEMD_SYSTEM.rmdir()
            self._remove_files()
        finally:
            if lock_fd is not None:
                _release_lock(lock_fd)
        self._reap_holder()

    def _stop_manager(self, manager: ProcId) -> None:
        # Stop the fleet first so its units exit while the manager still tracks them.
        with contextlib.suppress(SandboxError, subprocess.TimeoutExpired):
            self.systemctl("stop", *UNITS, check=False, timeout=STOP_TIMEOUT_S)
        send_signal(manager, signal.SIGTERM)  # the manager then stops all its units and exits
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not manager.alive(), STOP_TIMEOUT_S, "systemd --user to exit")
            return
        send_signal(manager, signal.SIGKILL)  # its leftovers are swept from the cgroups
        wait_for(lambda: not manager.alive(), 5.0, "the killed systemd --user to vanish")

    def _lock_after_manager(self) -> int | None:
        """The machine lock once our manager's holder let go; None if another sandbox has it."""

        def attempt() -> tuple[int | None] | None:
            fd = _try_lock(self.root)
            if fd is not None:
                return (fd,)
            # Held for our root: the holder is still exiting; held for another: not ours.
            return None if lock_owner() == str(self.root) else (None,)

        try:
            got: tuple[int | None] = wait_for(attempt, 5.0, f"the lock holder of {self.root}")
        except TimeoutError:
            return None
        return got[0]

    def _reap_holder(self) -> None:
        if self._holder is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._holder.wait(timeout=5)
            self._holder = None

    def _remove_files(self) -> None:
        for path in (self.run_dir, self.home, self.logs_dir):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.state_file, self.manager_log):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # only when nothing else lives there
            self.root.rmdir()

    # --- reporting -------------------------------------------------------------------------

    def status(self) -> str:
        """A human-readable summary: manager, bus, and each demo unit."""
        state = _State.load(self.state_file)
        lines = [f"sandbox {self.root}"]
        if state is None or state.manager is None or not state.manager.alive():
            return "\n".join([*lines, "manager: not running"])
        bus = "answers" if self.bus_answers() else "does NOT answer"
        lines.append(f"manager: systemd --user pid {state.manager.pid}")
        lines.append(f"bus: {self.env()['DBUS_SESSION_BUS_ADDRESS']} (systemd1 {bus})")
        lines += [self._unit_line(program) for program in PROGRAMS]
        return "\n".join(lines)

    def _unit_line(self, program: str) -> str:
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


def _unit(name: str) -> str:
    """A unit name: 'trader' becomes 'trader.service'; anything with a suffix stays."""
    return name if "." in name else f"{name}.service"


# --- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m supervisor.sandbox",
        description="A systemd user manager with the demo trading fleet, for tests and demos.",
    )
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="default: %(default)s")
    parser.add_argument("--dashboard-port", type=int, help="default: recorded, else 5050")
    parser.add_argument("--restart", choices=sorted(RESTART_VALUES), help="units' Restart=")
    return parser


def _run(command: str, sandbox: Sandbox) -> None:
    if command == "up":
        started = time.monotonic()
        sandbox.up()
        print(sandbox.status())
        root = "" if sandbox.root == DEFAULT_ROOT else f" --root {shlex.quote(str(sandbox.root))}"
        print(
            f'up in {time.monotonic() - started:.2f}s; then: eval "$(scripts/sandbox.sh env{root})"'
        )
    elif command == "down":
        started = time.monotonic()
        sandbox.down()
        print(f"down in {time.monotonic() - started:.2f}s")
    elif command == "status":
        print(sandbox.status())
    else:
        for key, value in sandbox.env().items():
            print(f"export {key}={shlex.quote(value)}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m supervisor.sandbox up|down|status|env``."""
    args = _parser().parse_args(argv)
    try:
        sandbox = Sandbox.attach(
            args.root, dashboard_port=args.dashboard_port, restart=args.restart
        )
        _run(args.command, sandbox)
    except SandboxUnavailable as exc:
        print(f"sandbox unavailable: {exc}", file=sys.stderr)
        return 2
    except (SandboxError, ValueError, TimeoutError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
