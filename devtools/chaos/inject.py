"""How each kind of fault is made, lifted and, when the supervisor did not repair it, cleaned up.

Unit faults go through the demo fleet's own faults (`devtools.demo.faults`, via
`Sandbox.fault`) or a signal pinned to the MainPID's start time, so a reused PID is never hit.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from devtools.bench.settings import BenchError
from devtools.bench.stats import parse_wrk
from devtools.chaos.daemon import SupervisorProcess
from devtools.chaos.plan import Kind
from devtools.chaos.record import Fault, LoadResult
from devtools.chaos.telegram import BotThread
from devtools.sandbox import ProcId, Sandbox, SandboxError, send_signal

REPO = Path(__file__).resolve().parents[2]
LOAD_CONNECTIONS = 10
LOAD_RATE_PER_S = 300  # bounded: about what made the supervisor trip its breaker (issue 11)
ORPHAN_GRAB_S = 2.0
_WRK_SCRIPT = """\
local paths = {"/health", "/metrics"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % 2) + 1])
end
delay = function() return DELAY_MS end
"""


class Skip(Exception):  # noqa: N818 - it is an outcome, not an error
    """The fault could not be injected now; the message says why."""


class Injector:
    """Makes faults happen and keeps what it started (orphans, wrk) until they are gone."""

    def __init__(
        self,
        box: Sandbox,
        sup: SupervisorProcess,
        bot: BotThread,
        *,
        http_port: int,
        work: Path,
        reconfigure: Callable[[int], tuple[str, ...]],
    ) -> None:
        self.box = box
        self.sup = sup
        self.bot = bot
        self.http_port = http_port
        self.work = work
        # Writes the config variant a reload reads; returns the critical targets it names.
        self.reconfigure = reconfigure
        self.loads: list[LoadResult] = []
        self._helpers: dict[int, subprocess.Popen[bytes]] = {}  # fault number -> process
        self._victims: dict[int, ProcId] = {}

    # --- start ------------------------------------------------------------------------------

    def start(self, fault: Fault) -> None:
        """Inject `fault` now; raises Skip when it cannot be."""
        kind, target = fault.kind, fault.target
        if target is not None:
            self._pin_victim(fault, target)
        fault.start = time.time()
        starters: dict[Kind, Callable[[Fault], None]] = {
            Kind.KILL: lambda f: self._signal_victim(f, signal.SIGKILL),
            Kind.SIGSTOP: lambda f: self._signal_victim(f, signal.SIGSTOP),
            Kind.HANG: lambda f: self._demo(f, "hang"),
            Kind.STALL: lambda f: self._demo(f, "stall-heartbeat"),
            Kind.MEMORY: self._grow,
            Kind.CRASH_LOOP: self._crash_loop,
            Kind.ORPHAN: self._orphan,
            Kind.BUS_KILL: self._bus_kill,
            Kind.REEXEC: lambda f: self._systemctl("daemon-reexec"),
            Kind.RELOAD: self._reload,
            Kind.SUPERVISOR_KILL: self._kill_supervisor,
            Kind.LOAD: self._load,
            Kind.TELEGRAM_DOWN: lambda f: self.bot.down(),
            Kind.TELEGRAM_429: lambda f: self.bot.rate_limit(2, 2 + f.plan.variant % 5),
        }
        starters[kind](fault)
        if fault.plan.hold_s == 0 and kind not in (Kind.LOAD, Kind.TELEGRAM_429):
            fault.lifted = fault.start

    def _pin_victim(self, fault: Fault, target: str) -> None:
        pid = self.box.main_pid(target)
        victim = ProcId.of(pid, f"{target} main process") if pid else None
        if victim is None:
            raise Skip(f"{target}.service has no main process")
        fault.victim = victim.pid
        self._victims[fault.plan.n] = victim

    def _signal_victim(self, fault: Fault, signum: int) -> None:
        if not send_signal(self._victims[fault.plan.n], signum):
            raise Skip(f"the main process of {fault.target} was gone before the signal")

    def _demo(self, fault: Fault, name: str) -> None:
        assert fault.target is not None
        try:
            self.box.fault(fault.target, name)
        except SandboxError as exc:
            raise Skip(str(exc)) from None

    def _grow(self, fault: Fault) -> None:
        # Two steps of 64 MiB: past the limit, which sits MEMORY_MARGIN_MB over the baseline.
        self._demo(fault, "grow-memory")
        self._demo(fault, "grow-memory")

    def _crash_loop(self, fault: Fault) -> None:
        self._demo(fault, "crash-on-start")
        self._demo(fault, "crash")

    def _orphan(self, fault: Fault) -> None:
        """Kill the dashboard and take its port before anything restarts it."""
        self._signal_victim(fault, signal.SIGKILL)
        port = self.box.dashboard_port
        sock = _grab(port, ORPHAN_GRAB_S)
        if sock is None:
            fault.notes.append("the dashboard was back on its port first: this was a kill -9")
            return
        with sock:
            cmd = [sys.executable, "-m", "devtools.demo", "orphan", "--port", str(port)]
            self._helpers[fault.plan.n] = subprocess.Popen(
                [*cmd, "--fd", str(sock.fileno())],
                pass_fds=(sock.fileno(),),
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        fault.notes.append(f"orphan pid {self._helpers[fault.plan.n].pid} holds port {port}")

    def _bus_kill(self, fault: Fault) -> None:
        pid = int(self.box.show("dbus.service", "MainPID")["MainPID"])
        bus = ProcId.of(pid, "dbus-daemon") if pid else None
        if bus is None or not send_signal(bus, signal.SIGKILL):
            raise Skip("the session bus is not running")
        fault.victim = pid

    def _systemctl(self, *args: str) -> None:
        try:
            self.box.systemctl(*args, timeout=30)
        except (SandboxError, subprocess.TimeoutExpired) as exc:
            raise Skip(f"systemctl --user {' '.join(args)}: {exc}") from None

    def _reload(self, fault: Fault) -> None:
        life = self.sup.life
        if not self.sup.ready() or life is None:
            raise Skip("the supervisor is not running")
        fault.victim, fault.life = life.pid, life.n
        fault.shows = self.reconfigure(fault.plan.variant)
        self.sup.signal(signal.SIGHUP)

    def _kill_supervisor(self, fault: Fault) -> None:
        life = self.sup.life
        if not self.sup.ready() or life is None:
            raise Skip("the supervisor is not running")
        fault.victim = life.pid
        self.sup.signal(signal.SIGKILL, f"SIGKILL (fault {fault.plan.n})")

    def _load(self, fault: Fault) -> None:
        wrk = shutil.which("wrk")
        if wrk is None:
            raise Skip("wrk is not installed (scripts/test.sh installs it)")
        script = self.work / "load.lua"
        delay_ms = 1000 * LOAD_CONNECTIONS // LOAD_RATE_PER_S  # per connection, between requests
        script.write_text(_WRK_SCRIPT.replace("DELAY_MS", str(delay_ms)))
        seconds = max(1, round(fault.plan.hold_s))
        url = f"http://127.0.0.1:{self.http_port}"  # loopback only, whatever the config says
        cmd = [wrk, "-t1", f"-c{LOAD_CONNECTIONS}", f"-d{seconds}s", "-s", str(script), url]
        self._helpers[fault.plan.n] = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )

    # --- lift, and what is left -------------------------------------------------------------

    def lift(self, fault: Fault, now: float) -> None:
        """Take the cause away once it was held long enough (sets `fault.lifted`)."""
        if fault.lifted is not None or fault.start is None:
            return
        kind = fault.kind
        if kind is Kind.LOAD:
            self._load_done(fault)
        elif kind is Kind.TELEGRAM_429:
            if self.bot.pending_429() == 0:
                fault.lifted = now
        elif now >= fault.start + fault.plan.hold_s:
            if kind is Kind.CRASH_LOOP:
                self._demo(fault, "no-crash-on-start")
            elif kind is Kind.TELEGRAM_DOWN:
                self.bot.up()
            fault.lifted = now

    def _load_done(self, fault: Fault) -> None:
        proc = self._helpers.get(fault.plan.n)
        if proc is None or proc.poll() is None:
            return
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
        del self._helpers[fault.plan.n]
        fault.lifted = time.time()
        self.loads.append(load_result(fault.plan.n, out))

    def cause_gone(self, fault: Fault) -> bool:
        """True once nothing of the fault's cause is left for the supervisor to repair."""
        if fault.lifted is None:
            return False
        victim = self._victims.get(fault.plan.n)
        if victim is not None and victim.alive():
            return False  # the hung, stopped or overgrown process still runs
        helper = self._helpers.get(fault.plan.n)
        return helper is None or helper.poll() is not None

    def clean(self, fault: Fault) -> None:
        """Undo a fault the supervisor did not repair: the run puts things right itself."""
        if fault.lifted is None:
            self._force_lift(fault)
        victim = self._victims.pop(fault.plan.n, None)
        if victim is not None and victim.alive():
            send_signal(victim, signal.SIGCONT)
        helper = self._helpers.pop(fault.plan.n, None)
        if helper is not None:
            _stop(helper)
        if fault.target is not None and not self.box.ready(fault.target):
            with contextlib.suppress(SandboxError, subprocess.TimeoutExpired):
                self.box.systemctl("reset-failed", f"{fault.target}.service", check=False)
                self.box.systemctl("restart", f"{fault.target}.service", check=False)
            fault.notes.append(f"the run restarted {fault.target} itself")

    def _force_lift(self, fault: Fault) -> None:
        with contextlib.suppress(Skip, SandboxError):
            if fault.kind is Kind.CRASH_LOOP:
                self._demo(fault, "no-crash-on-start")
            elif fault.kind is Kind.TELEGRAM_DOWN:
                self.bot.up()
            elif fault.kind is Kind.TELEGRAM_429:
                self.bot.clear_429()
                # Nothing was sent while it lasted: there was nothing to repair.
                fault.start, fault.skipped = None, "no message was due while it lasted"
        fault.lifted = time.time()

    def forget(self, fault: Fault) -> None:
        """The fault is over: drop what was kept for it."""
        self._victims.pop(fault.plan.n, None)
        helper = self._helpers.pop(fault.plan.n, None)
        if helper is not None:
            _stop(helper)

    def close(self) -> None:
        """Stop every helper process and wake every stopped victim (always safe to call)."""
        for victim in self._victims.values():
            if victim.alive():
                send_signal(victim, signal.SIGCONT)
        for helper in self._helpers.values():
            _stop(helper)
        self._helpers.clear()
        self._victims.clear()


def _grab(port: int, within_s: float) -> socket.socket | None:
    """Bind and listen on 127.0.0.1:`port` as soon as it is free (None: never, in time)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            return sock
        except OSError:
            sock.close()
            time.sleep(0.001)  # the dying dashboard's socket closes within milliseconds
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout:
        proc.stdout.close()


def load_result(fault: int, text: str) -> LoadResult:
    """What wrk's report says (zeros when it has none, e.g. when wrk failed)."""
    try:
        got = parse_wrk(text)
    except BenchError:
        return LoadResult(fault, 0, 0, 0, 0.0)
    return LoadResult(fault, got["requests"], got["non_2xx"], got["socket_errors"], got["rps"])
