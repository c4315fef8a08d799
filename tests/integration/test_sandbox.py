"""The sandbox itself: a real systemd user manager, its bus, the demo fleet and its faults."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devtools.sandbox import (
    HEARTBEAT_FRESH_S,
    LOCK_PATH,
    UNITS,
    ProcId,
    Sandbox,
    SandboxError,
    send_signal,
    wait_for,
)

pytestmark = pytest.mark.sandbox

MIB = 1024 * 1024


def _unit_state(sandbox: Sandbox, unit: str) -> tuple[str, str]:
    props = sandbox.show(unit, "ActiveState", "SubState")
    return props["ActiveState"], props["SubState"]


def _failed_with(sandbox: Sandbox, unit: str, status: str) -> bool:
    props = sandbox.show(unit, "ActiveState", "ExecMainStatus")
    return props == {"ActiveState": "failed", "ExecMainStatus": status}


def _memory(sandbox: Sandbox, unit: str) -> int:
    return int(sandbox.show(unit, "MemoryCurrent")["MemoryCurrent"])


@contextmanager
def _orphan_on(port: int) -> Iterator[int]:
    """A stray process, outside any unit, listening on `port`; yields its PID."""
    cmd = [sys.executable, "-m", "devtools.demo", "orphan", "--port", str(port)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as orphan:
        try:
            assert orphan.stdout is not None
            # It prints its PID once it listens: reading that line is waiting for readiness.
            yield int(orphan.stdout.readline())
        finally:
            orphan.terminate()
            orphan.wait(timeout=5)


def test_up_is_idempotent(sandbox: Sandbox) -> None:
    before = {unit: sandbox.main_pid(unit) for unit in UNITS}
    manager = [p for p in sandbox.processes() if p.what == "systemd --user"]

    sandbox.up()

    assert {unit: sandbox.main_pid(unit) for unit in UNITS} == before
    assert [p for p in sandbox.processes() if p.what == "systemd --user"] == manager


def test_env_gives_a_bus_where_systemd1_answers(sandbox: Sandbox) -> None:
    env = sandbox.env()
    assert env["DBUS_SESSION_BUS_ADDRESS"] == f"unix:path={env['XDG_RUNTIME_DIR']}/bus"
    cmd = ["busctl", "--user", "--timeout=5", "get-property", "org.freedesktop.systemd1"]
    cmd += ["/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "Version"]
    out = subprocess.run(
        cmd, env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith('s "')


def test_fleet_is_active_with_fresh_heartbeats_and_dashboard_answering(sandbox: Sandbox) -> None:
    for unit in UNITS:
        assert _unit_state(sandbox, unit) == ("active", "running")
    for name in ("trader", "position-monitor"):
        beat = sandbox.read_heartbeat(name)
        assert beat is not None
        assert beat.pid == sandbox.main_pid(name)
        assert beat.age < HEARTBEAT_FRESH_S
    assert sandbox.dashboard_health() == {"status": "ok", "pid": sandbox.main_pid("dashboard")}


def test_stall_heartbeat_goes_stale_while_process_lives_then_resumes(sandbox: Sandbox) -> None:
    pid = sandbox.main_pid("trader")
    # Through the CLI once, so `python -m devtools.demo fault` is covered too.
    cmd = [sys.executable, "-m", "devtools.demo", "fault", "trader", "stall-heartbeat"]
    subprocess.run([*cmd, "--root", str(sandbox.root)], check=True)

    def stale() -> bool:
        beat = sandbox.read_heartbeat("trader")
        return beat is not None and beat.age > HEARTBEAT_FRESH_S

    wait_for(stale, HEARTBEAT_FRESH_S + 3, "the trader heartbeat to go stale")
    assert sandbox.main_pid("trader") == pid
    assert _unit_state(sandbox, "trader") == ("active", "running")

    sandbox.fault("trader", "resume-heartbeat")
    wait_for(lambda: not stale() and sandbox.ready("trader"), 3, "the trader to beat again")
    assert sandbox.main_pid("trader") == pid


def test_grow_and_shrink_memory_show_in_memory_current(sandbox: Sandbox) -> None:
    base = _memory(sandbox, "position-monitor")

    sandbox.fault("position-monitor", "grow-memory")
    wait_for(
        lambda: _memory(sandbox, "position-monitor") > base + 56 * MIB, 5, "64 MiB more in use"
    )
    sandbox.fault("position-monitor.service", "shrink-memory")
    wait_for(lambda: _memory(sandbox, "position-monitor") < base + 16 * MIB, 5, "it released")


def test_hang_keeps_port_open_but_dashboard_stops_answering(sandbox: Sandbox) -> None:
    pid = sandbox.main_pid("dashboard")

    sandbox.fault("dashboard", "hang")

    # The fault is applied by a signal handler: poll until a request goes unanswered.
    wait_for(lambda: sandbox.dashboard_health(timeout=0.5) is None, 5, "the dashboard to hang")
    with socket.create_connection(("127.0.0.1", sandbox.dashboard_port), timeout=2):
        pass  # the port still accepts connections
    assert sandbox.main_pid("dashboard") == pid
    assert _unit_state(sandbox, "dashboard") == ("active", "running")


def test_crash_leaves_the_unit_failed(sandbox: Sandbox) -> None:
    sandbox.fault("position-monitor", "crash")

    wait_for(lambda: _failed_with(sandbox, "position-monitor", "1"), 5, "a failed unit")
    assert sandbox.main_pid("position-monitor") == 0


def test_crash_on_start_makes_every_start_fail(sandbox: Sandbox) -> None:
    sandbox.fault("trader", "crash-on-start")
    sandbox.systemctl("restart", "trader.service")
    wait_for(lambda: _failed_with(sandbox, "trader", "1"), 5, "the trader start to fail")

    sandbox.fault("trader", "no-crash-on-start")
    sandbox.systemctl("restart", "trader.service")
    sandbox.wait_ready("trader")


def test_orphan_holding_the_port_makes_dashboard_start_fail(sandbox: Sandbox) -> None:
    sandbox.systemctl("stop", "dashboard.service")
    with _orphan_on(sandbox.dashboard_port) as orphan_pid:
        assert orphan_pid > 0
        sandbox.systemctl("start", "dashboard.service")
        wait_for(lambda: _failed_with(sandbox, "dashboard", "1"), 5, "the dashboard to fail")
    log = (sandbox.logs_dir / "dashboard.log").read_text()
    assert "port is already in use" in log


def test_installed_variant_restarts_on_failure(sandbox: Sandbox) -> None:
    text = sandbox.unit_text("position-monitor").replace("Restart=no", "Restart=on-failure")
    sandbox.install_unit("position-monitor.service", text)
    restarts = int(sandbox.show("position-monitor", "NRestarts")["NRestarts"])
    old_pid = sandbox.main_pid("position-monitor")

    sandbox.fault("position-monitor", "crash")

    wait_for(
        lambda: int(sandbox.show("position-monitor", "NRestarts")["NRestarts"]) > restarts,
        5,
        "systemd to restart the crashed unit",
    )
    sandbox.wait_ready("position-monitor")
    assert sandbox.main_pid("position-monitor") != old_pid


def test_second_sandbox_is_refused_while_one_is_up(
    sandbox: Sandbox, tmp_path: Path, unused_tcp_port: int
) -> None:
    other = Sandbox(tmp_path / "other", dashboard_port=unused_tcp_port)

    with pytest.raises(SandboxError, match=str(sandbox.root)):
        other.up()
    assert not (tmp_path / "other").exists()


def _all_gone(procs: list[ProcId]) -> bool:
    return not any(p.alive() for p in procs)


def _lock_is_free() -> bool:
    fd = os.open(LOCK_PATH, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_down_leaves_nothing_then_up_again(sandbox: Sandbox) -> None:
    procs = sandbox.processes()
    # holder, manager, dbus-daemon and the three demo programs at least
    assert len(procs) >= 6

    sandbox.down()

    assert _all_gone(procs), [p for p in procs if p.alive()]
    assert not sandbox.state_file.exists()
    assert _lock_is_free()
    sandbox.down()  # a second down has nothing to do and must not fail
    sandbox.up()
    for unit in UNITS:
        assert sandbox.ready(unit)


def test_down_after_manager_was_sigkilled_stops_its_orphans(sandbox: Sandbox) -> None:
    procs = sandbox.processes()
    manager = next(p for p in procs if p.what == "systemd --user")
    trader = ProcId.of(sandbox.main_pid("trader"), "trader")
    assert trader is not None

    send_signal(manager, signal.SIGKILL)
    wait_for(lambda: not manager.alive(), 5, "the manager to die")
    assert trader.alive()  # its units outlive it: only the teardown's sweep stops them

    sandbox.down()

    assert _all_gone(procs), [p for p in procs if p.alive()]
