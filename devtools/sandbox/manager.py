"""The Sandbox: a systemd user manager with the demo fleet (see the package docstring).

This module owns the manager's life: the machine lock, start-up, the processes recorded in
state.json, and teardown. The file layout and systemctl are `devtools.sandbox.client`'s, the
demo units `devtools.sandbox.fleet`'s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

from devtools.demo import faults as demo_faults
from devtools.sandbox import delegate
from devtools.sandbox.client import _unit
from devtools.sandbox.fleet import PROGRAMS, REPO, START_TIMEOUT_S, UNITS, DemoFleet
from devtools.sandbox.host import (
    RUN_SYSTEMD_SYSTEM,
    SYSTEMD,
    _ensure_run_systemd_system,
    _kmsg_lines,
    _preflight,
    _State,
    tail,
)
from devtools.sandbox.procs import (
    LOCK_PATH,
    ProcId,
    SandboxError,
    SandboxFailed,
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

DEFAULT_ROOT = REPO / ".sandbox"
MANAGER_ARGS = ("--user", "--log-target=kmsg", "--log-level=notice")
STOP_TIMEOUT_S = 15.0


class Sandbox(DemoFleet):
    """A systemd user manager with the demo fleet, all under `root`. See the module doc."""

    def __init__(
        self,
        root: Path,
        *,
        dashboard_port: int = 5050,
        restart: str = "no",
        user: str | None = None,
    ) -> None:
        super().__init__(root, dashboard_port=dashboard_port, restart=restart)
        self._holder: subprocess.Popen[bytes] | None = None
        # Unprivileged (`user`): its own delegated cgroup subtree, so only its own lock.
        self.user = user
        self.account = None if user is None else delegate.Account.find(user)
        if user is not None:
            # The demo programs need only the standard library and our code: the system's
            # interpreter and a copy the account owns, wherever this checkout lives.
            self.python, self.code_dir = delegate.SYSTEM_PYTHON, self.root / "code"
        own_lock = Path(f"/tmp/{delegate.slug(self.root)}.lock")
        self.lock_path = LOCK_PATH if user is None else own_lock

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
            user=state.user if state else None,
        )

    def _uid(self) -> int:
        """The UID the sandbox's manager and units run as."""
        return os.geteuid() if self.account is None else self.account.uid

    # --- the demo fleet, kept running ------------------------------------------------------

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
        if self.user is not None:
            self.account = self._unprivileged_account(self.user, self.root)
        lock_fd = _try_lock(self.root, self.lock_path)
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

    @staticmethod
    def _unprivileged_account(user: str, root: Path) -> delegate.Account:
        account = delegate.Account.ensure(user)
        if not account.can_read(delegate.SYSTEM_PYTHON):
            raise SandboxUnavailable(
                f"user {user!r} cannot run {delegate.SYSTEM_PYTHON}, which the demo units of "
                "an unprivileged sandbox run on"
            )
        root.parent.mkdir(parents=True, exist_ok=True)
        if not account.can_enter(root.parent):
            raise SandboxUnavailable(
                f"user {user!r} cannot reach {root.parent} (a directory on the way is private): "
                "put an unprivileged sandbox where every user may pass, such as /tmp"
            )
        return account

    def _up_again(self) -> None:
        owner = lock_owner(self.lock_path)
        if owner != str(self.root):
            raise SandboxError(
                f"another sandbox is up on this machine: {owner or 'an unknown owner'} holds "
                f"{self.lock_path} (only one at a time: on cgroup v1 its manager owns the cgroup "
                "root); bring it down first"
            )
        state = _State.load(self.state_file)
        if state is None or not state.manager_alive():
            raise SandboxError(
                f"{self.lock_path} is held for {owner} but its manager is not running"
            )
        self._ensure_fleet()

    def _start(self, lock_fd: int) -> None:
        self._make_dirs()
        for program in PROGRAMS:
            self._write_unit(program)  # before the manager starts: no daemon-reload needed
        state = _State(self.dashboard_port, self.restart, user=self.user)
        state.created_run_systemd_system = _ensure_run_systemd_system()
        if self.account is not None:
            delegate.copy_code(REPO, self.code_dir)
            self.account.give(self.root)
            subtree = delegate.delegate(delegate.slug(self.root), self.account)
            state.cgroups = [str(path) for path in subtree]
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
        # Unprivileged, it first waits for a line on stdin: the word that root moved it into
        # the delegated cgroups, which the manager then takes as its root.
        script = '"$@"; exit $?' if self.account is None else 'read -r _; exec </dev/null; "$@"'
        cmd = ["/bin/sh", "-c", script, "sandbox-lock-holder", str(SYSTEMD)]
        with self.manager_log.open("ab") as log:
            self._holder = subprocess.Popen(
                [*cmd, *MANAGER_ARGS],
                env=self._manager_env(),
                pass_fds=(lock_fd,),
                start_new_session=True,
                stdin=subprocess.DEVNULL if self.account is None else subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                **self.as_account(),
            )
        holder = self._holder
        if holder.stdin is not None:
            delegate.enter(holder.pid, [Path(path) for path in state.cgroups])
            holder.stdin.write(b"go\n")
            holder.stdin.close()
        state.holder = ProcId.of(holder.pid, "lock holder (sh)")
        state.manager = wait_for(
            lambda: self._forked_manager(holder), 5.0, "the holder to fork systemd --user"
        )
        state.dump(self.state_file)

    def _forked_manager(self, holder: subprocess.Popen[bytes]) -> ProcId | None:
        if holder.poll() is not None:
            raise SandboxFailed(self._exit_report(None, holder.returncode))
        children = [pid for pid in _pids() if _parent_pid(pid) == holder.pid]
        return ProcId.of(children[0], "systemd --user") if children else None

    def _wait_manager(self, state: _State) -> None:
        manager = state.manager
        assert manager is not None  # set by _spawn_manager

        def answers() -> bool:
            if not manager.alive():
                raise SandboxFailed(self._exit_report(manager, self._holder_status()))
            return self.systemctl("show", "--property=Version", check=False).returncode == 0

        try:
            wait_for(answers, START_TIMEOUT_S, "systemctl --user to answer")
            wait_for(self.bus_answers, START_TIMEOUT_S, "org.freedesktop.systemd1 on the bus")
        except TimeoutError as exc:
            raise SandboxFailed(f"{exc}\n{self._manager_logs(manager.pid)}") from exc
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
            procs += unit_cgroup_members(state.cgroup_base, state.manager.start, self._uid())
        return procs

    def _record_processes(self) -> None:
        state = _State.load(self.state_file)
        if state is None or state.manager is None or state.cgroup_base is None:
            return
        # Keep earlier records too: a process that left the cgroups is still ours to stop.
        members = unit_cgroup_members(state.cgroup_base, state.manager.start, self._uid())
        found = [*state.processes, *members]
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
                victims += unit_cgroup_members(state.cgroup_base, state.manager.start, self._uid())
            terminate(victims)
            if owned and state.cgroup_base is not None:
                _remove_unit_cgroups(state.cgroup_base)
            if owned:
                delegate.release([Path(path) for path in state.cgroups])
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
            fd = _try_lock(self.root, self.lock_path)
            if fd is not None:
                return (fd,)
            # Held for our root: the holder is still exiting; held for another: not ours.
            return None if lock_owner(self.lock_path) == str(self.root) else (None,)

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
        for path in (self.run_dir, self.home, self.logs_dir, self.root / "code"):
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
