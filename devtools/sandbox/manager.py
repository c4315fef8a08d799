"""The Sandbox: a systemd user manager with the demo fleet (see the package docstring)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from devtools.demo import faults as demo_faults
from devtools.sandbox.host import (
    RUN_SYSTEMD_SYSTEM,
    SYSTEMD,
    TOOL_PATH,
    Heartbeat,
    _ensure_run_systemd_system,
    _escape,
    _exec_word,
    _kmsg_lines,
    _preflight,
    _State,
    tail,
)
from devtools.sandbox.procs import (
    LOCK_PATH,
    ProcId,
    SandboxError,
    SandboxUnavailable,
    _cgroup_base,
    _parent_pid,
    _pid1_is_systemd,
    _pids,
    _release_lock,
    _remove_unit_cgroups,
    _try_lock,
    lock_owner,
    send_signal,
    terminate,
    unit_cgroup_members,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / ".sandbox"
PROGRAMS = demo_faults.PROGRAMS
UNITS = tuple(f"{program}.service" for program in PROGRAMS)
RESTART_VALUES = frozenset(
    {"no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"}
)
MANAGER_ARGS = ("--user", "--log-target=kmsg", "--log-level=notice")
HEARTBEAT_FRESH_S = 2.5  # a beat every second: older than this means at least two were missed
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0
# Where the manager puts unit processes, relative to the parent of its own init.scope.
_UNIT_SLICES = ("app.slice", "session.slice", "background.slice")


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
        args = [sys.executable, "-m", "devtools.demo", program, *self._program_args(program)]
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
        log = tail(self.manager_log)
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
