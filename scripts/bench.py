#!/usr/bin/env python3
"""Benchmarks of the real supervisor process against the sandbox's demo fleet, side by side
with Monit and with systemd alone.

Brings up its own sandbox (a private systemd --user running trader, dashboard and
position-monitor; see devtools.sandbox) and measures on this machine:

- startup: process start -> READY=1 on a real NOTIFY_SOCKET;
- idle overhead: the supervisor's CPU (% of one core, /proc utime+stime) and RSS with the
  three demo targets and with 100 targets (97 more units running `sleep`);
- detection latency: kill -9 of trader's main process (Restart=no, recovery off) -> the
  `since` of the trader's fail status in /health, and -> the first GET /health saying fail;
- recovery time per fault (dead, hung, stale heartbeat, orphan holding the port), from the
  fault to the unit serving again from a new process, for the supervisor, for Monit (same
  period, timeout and failure count) and for systemd alone (Restart=on-failure);
- GET /health under load (wrk at 1, 10 and 100 connections) with the watchdog on: requests/s,
  latency, the longest gap between WATCHDOG=1 pings, and whether probes kept their schedule.

Prints Markdown tables (JSON with --json); progress goes to stderr. docs/BENCHMARKS.md says
what each figure means and how it is measured. Run after ./scripts/test.sh set up .venv:

    .venv/bin/python scripts/bench.py            # full run, about 11 minutes
    .venv/bin/python scripts/bench.py --quick    # smoke run, under 3 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.demo import faults as demo_faults  # noqa: E402
from devtools.sandbox import ProcId, Sandbox  # noqa: E402
from supervisor import __version__  # noqa: E402
from supervisor.recovery import ports  # noqa: E402

SUPERVISOR_BIN = REPO / ".venv" / "bin" / "supervisor"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# The probe defaults (supervisor/config.py) and the same settings given to Monit.
PERIOD_S = 5.0
TIMEOUT_S = 2.0
FAILURE_THRESHOLD = 3
HEARTBEAT_MAX_AGE_S = 5  # the stale-heartbeat case, for both tools
WATCHDOG_USEC = 2_000_000  # under load: the supervisor must ping at least every 1 s
WATCHDOG_SLACK_S = 0.25
FLEET_PROBES = 3  # fleet_config: one probe per demo target
SCENARIOS = ("dead", "hung", "stale", "orphan")
SECTIONS = ("startup", "idle", "detection", "supervisor", "monit", "systemd", "load")

# Deadlines: every wait ends, with an error that says what it waited for.
READY_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 30.0
DETECT_TIMEOUT_S = 10.0
RECOVERY_TIMEOUT_S = 60.0
POLL_S = 0.01

T = TypeVar("T")


class BenchError(Exception):
    """A benchmark step failed; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    """How much of everything a run does (full or --quick)."""

    quick: bool
    startup_reps: int
    idle_windows: int
    idle_window_s: float
    idle_settle_s: float
    kills: int
    reps: dict[str, int]  # recovery repetitions per scenario (supervisor, Monit, systemd)
    not_recovered_wait_s: float  # how long a tool that cannot recover is given to prove it
    wrk_s: int

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(
                quick=True,
                startup_reps=3,
                idle_windows=3,
                idle_window_s=5.0,
                idle_settle_s=2.0,
                kills=5,
                reps={"dead": 2, "hung": 1, "stale": 1, "orphan": 1},
                not_recovered_wait_s=6.0,
                wrk_s=3,
            )
        return cls(
            quick=False,
            startup_reps=7,
            idle_windows=5,
            idle_window_s=20.0,  # /proc counts 10 ms ticks: 20 s resolves 0.05 % of a core
            idle_settle_s=10.0,
            kills=20,
            reps={"dead": 5, "hung": 5, "stale": 5, "orphan": 5},
            not_recovered_wait_s=30.0,
            wrk_s=10,
        )


# --- small helpers ----------------------------------------------------------------------------

_started = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr (stdout carries only the result)."""
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def wait(pred: Callable[[], T | None], timeout: float, what: str, interval: float = POLL_S) -> T:
    """Poll `pred` until it returns something truthy; BenchError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = pred()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def parse_time(text: str) -> float:
    """RFC 3339 UTC with milliseconds, as /health writes it, to seconds since the epoch."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": [round(v, 4) for v in values],
    }


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50, p99 (inclusive interpolation: with 20 samples it lies near the max) and max."""
    if len(values) > 1:
        p99 = statistics.quantiles(values, n=100, method="inclusive")[98]
    else:
        p99 = values[0]
    return {
        "p50": statistics.median(values),
        "p99": p99,
        "max": max(values),
        "min": min(values),
        "n": len(values),
        "values": [round(v, 2) for v in values],
    }


def tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- child processes: every one is tracked and ends with the run ------------------------------

_children: list[subprocess.Popen[Any]] = []


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    proc: subprocess.Popen[Any] = subprocess.Popen(cmd, **kwargs)
    _children.append(proc)
    return proc


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM (and SIGCONT, in case we stopped it), then SIGKILL; always reaps it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    with contextlib.suppress(ValueError):
        _children.remove(proc)


def stop_children() -> None:
    for proc in reversed(list(_children)):
        try:
            stop_process(proc)
        except Exception as exc:  # teardown goes on whatever one child does
            say(f"could not stop pid {proc.pid}: {exc}")


# --- talking to a supervisor ----------------------------------------------------------------


class HttpClient:
    """One keep-alive connection to 127.0.0.1:port, reopened when it breaks."""

    def __init__(self, port: int, timeout: float = 2.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, bytes]:
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            try:
                self._conn.request("GET", path)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, path: str = "/health") -> dict[str, Any]:
        _status, body = self.get(path)
        doc: dict[str, Any] = json.loads(body)
        return doc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Watcher:
    """A watching process (ours or Monit) that a scenario may hold still while it sets up."""

    _proc: subprocess.Popen[bytes] | None = None

    def pause(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> float:
        assert self._proc is not None
        now = time.monotonic()
        self._proc.send_signal(signal.SIGCONT)
        return now


class Supervisor(Watcher):
    """A `supervisor run` process: own config, state dir, log, port and NOTIFY_SOCKET."""

    def __init__(
        self, box: Sandbox, run_dir: Path, port: int, config: str, watchdog_usec: int | None
    ) -> None:
        self.box = box
        self.dir = run_dir
        self.port = port
        self.log = run_dir / "supervisor.log"
        self.watchdog_usec = watchdog_usec
        self.watchdog: list[float] = []  # monotonic times of WATCHDOG=1
        self.ready_s = 0.0
        self._ready_at = 0.0
        (run_dir / "config.toml").write_text(config)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.client = HttpClient(port)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        notify_path = self.dir / "notify"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(notify_path))
        sock.settimeout(0.2)
        self._sock = sock
        env = {**os.environ, **self.box.env(), "NOTIFY_SOCKET": str(notify_path)}
        env.pop("WATCHDOG_PID", None)
        env.pop("WATCHDOG_USEC", None)
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        self._reader = threading.Thread(target=self._read, name="notify", daemon=True)
        self._reader.start()
        cmd = [str(SUPERVISOR_BIN), "run", "--config", str(self.dir / "config.toml")]
        with self.log.open("ab") as log:
            started = time.monotonic()
            self._proc = spawn(
                [*cmd, "--log-level", "INFO"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = started + READY_TIMEOUT_S
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None:
                raise BenchError(
                    f"the supervisor exited with {self._proc.returncode} before READY=1:\n"
                    f"{tail(self.log)}"
                )
            if time.monotonic() > deadline:
                raise BenchError(f"no READY=1 within {READY_TIMEOUT_S:g} s:\n{tail(self.log)}")
        self.ready_s = self._ready_at - started

    def _read(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            for line in data.decode(errors="replace").splitlines():
                if line == "READY=1" and not self._ready.is_set():
                    self._ready_at = now
                    self._ready.set()
                elif line == "WATCHDOG=1":
                    self.watchdog.append(now)

    def stop(self) -> None:
        self.client.close()
        if self._proc is not None:
            stop_process(self._proc, timeout=15)
        self._stop.set()
        if self._reader is not None:
            self._reader.join(2)
        if self._sock is not None:
            self._sock.close()

    def statuses(self) -> dict[str, str]:
        doc = self.client.json("/health")
        return {name: entries[0]["status"] for name, entries in doc["checks"].items()}

    def wait_pass(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        def all_pass() -> bool:
            try:
                return all(s == "pass" for s in self.statuses().values())
            except (OSError, http.client.HTTPException, ValueError):
                return False

        try:
            wait(all_pass, timeout, "every target to pass in /health", interval=0.05)
        except BenchError as exc:
            try:
                last: object = self.statuses()
            except (OSError, http.client.HTTPException, ValueError) as why:
                last = f"/health unreadable: {why}"
            raise BenchError(f"{exc}; last statuses: {last}\n{tail(self.log)}") from None

    def probe_runs(self) -> dict[str, float]:
        """supervisor_probe_runs_total per {target,type} from /metrics."""
        _status, body = self.client.get("/metrics")
        runs = {}
        for m in re.finditer(
            r"^supervisor_probe_runs_total\{([^}]*)\} (\S+)$", body.decode(), re.M
        ):
            runs[m.group(1)] = float(m.group(2))
        return runs


_run_dirs: dict[str, int] = {}


def run_dir(work: Path, name: str) -> Path:
    n = _run_dirs[name] = _run_dirs.get(name, 0) + 1
    path = work / f"{name}-{n}"
    path.mkdir(parents=True)
    return path


@contextlib.contextmanager
def supervisor(
    box: Sandbox,
    work: Path,
    name: str,
    build: Callable[[int, Path], str],
    watchdog_usec: int | None = None,
) -> Iterator[Supervisor]:
    """A supervisor on a free port with its own state dir; stopped on the way out."""
    path = run_dir(work, name)
    port = free_port()
    sup = Supervisor(box, path, port, build(port, path / "state"), watchdog_usec)
    try:
        sup.start()
        yield sup
    finally:
        sup.stop()


def fleet_config(
    box: Sandbox,
    port: int,
    state_dir: Path,
    *,
    recovery: bool,
    extra_targets: int = 0,
    heartbeat_max_age_s: float = 15,
) -> str:
    """The demo fleet at default probe settings (plus `extra_targets` heartbeat targets).

    The breaker is off: the benchmarks load both cores on purpose, and an open breaker pauses
    probes. With recovery on, every attempt is immediate (backoff_s = [0]) and there is no
    give-up in reach, so every repetition is the first attempt of a fresh incident.
    """

    def recovery_toml(actions: str) -> str:
        if not recovery:
            return "  [targets.recovery]\n  enabled = false\n"
        return (
            f"  [targets.recovery]\n  enabled = true\n  actions = {actions}\n"
            "  max_attempts = 1000\n  backoff_s = [0.0]\n"
        )

    hb = box.heartbeat_path
    text = f"""state_dir = {json.dumps(str(state_dir))}
[http]
port = {port}
[breaker]
enabled = false
[[targets]]
name = "trader"
unit = "trader.service"
critical = true
  [[targets.probes]]
  type = "heartbeat"
  path = {json.dumps(str(hb("trader")))}
  max_age_s = {heartbeat_max_age_s}
{recovery_toml('["restart"]')}
[[targets]]
name = "dashboard"
unit = "dashboard.service"
ports = [{box.dashboard_port}]
  [[targets.probes]]
  type = "http"
  url = "http://127.0.0.1:{box.dashboard_port}/health"
{recovery_toml('["restart", "free-port"]')}
[[targets]]
name = "position-monitor"
unit = "position-monitor.service"
  [[targets.probes]]
  type = "heartbeat"
  path = {json.dumps(str(hb("position-monitor")))}
  max_age_s = 15
{recovery_toml('["restart"]')}
"""
    for i in range(extra_targets):
        text += (
            f'[[targets]]\nname = "gen{i}"\nunit = "gen{i}.service"\n'
            f'  [[targets.probes]]\n  type = "heartbeat"\n'
            f"  path = {json.dumps(str(hb('trader')))}\n  max_age_s = 15\n"
        )
    return text


# --- faults and "serving again" -------------------------------------------------------------


@dataclass
class Fault:
    """A fault put in place: whose new process we wait for, the old one, and when."""

    scenario: str
    program: str  # "dashboard" or "trader"
    old: ProcId
    t0: float  # monotonic time of the fault
    orphan: subprocess.Popen[Any] | None = None


STALL = demo_faults.signal_number(demo_faults.FAULTS["stall-heartbeat"].signal_name or "")


def signal_unit(box: Sandbox, program: str, signum: int) -> tuple[ProcId, float, float]:
    """Signal `program`'s MainPID through a pidfd; the times (wall, monotonic) are taken just
    before the signal is sent."""
    pid = box.main_pid(program)
    proc = ProcId.of(pid, program) if pid > 0 else None
    if proc is None:
        raise BenchError(f"{program}.service has no live MainPID")
    fd = os.pidfd_open(pid)
    try:
        if box.main_pid(program) != pid or not proc.alive():
            raise BenchError(f"{program}.service changed MainPID while being signalled")
        wall, mono = time.time(), time.monotonic()
        signal.pidfd_send_signal(fd, signum)
    finally:
        os.close(fd)
    return proc, wall, mono


def serving_pid(box: Sandbox, program: str) -> int | None:
    """Who serves now: the pid in the dashboard's /health, or in the trader's last heartbeat."""
    if program == "dashboard":
        health = box.dashboard_health(timeout=0.25)
        pid = health.get("pid") if health else None
        return pid if isinstance(pid, int) else None
    beat = box.read_heartbeat(program)
    return beat.pid if beat else None


def served_again(box: Sandbox, fault: Fault) -> float | None:
    """Seconds from the fault until a new process serves, if it does now (else None).

    While the old process lives (hung, stalled) nothing new can serve: that is checked in
    /proc first, so a stopped dashboard is not flooded with connections.
    """
    if fault.old.alive():
        return None
    pid = serving_pid(box, fault.program)
    if pid is not None and pid != fault.old.pid:
        return time.monotonic() - fault.t0
    return None


def wait_served(box: Sandbox, fault: Fault, timeout: float) -> float | None:
    deadline = fault.t0 + timeout
    while time.monotonic() < deadline:
        took = served_again(box, fault)
        if took is not None:
            return took
        time.sleep(POLL_S)
    return None


def start_orphan(box: Sandbox) -> subprocess.Popen[Any]:
    """`python -m devtools.demo orphan` on the dashboard's port, outside any unit."""
    port = box.dashboard_port
    cmd = [sys.executable, "-m", "devtools.demo", "orphan", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = spawn(cmd, stdout=subprocess.DEVNULL, env=env, cwd=REPO)
    wait(
        lambda: ports.listening_inodes(port) or proc.poll() is not None,
        10,
        f"the orphan to listen on port {port}",
    )
    if proc.poll() is not None:
        raise BenchError(f"the orphan exited with {proc.returncode}: is port {port} taken?")
    return proc


def active_state(box: Sandbox, program: str) -> str:
    return box.show(program, "ActiveState")["ActiveState"]


def inject(
    box: Sandbox,
    scenario: str,
    pause: Callable[[], None] | None = None,
    resume: Callable[[], float] | None = None,
) -> Fault:
    """Put `scenario`'s fault in place.

    orphan: stop the dashboard, start an orphan on its port, start the dashboard so it fails.
    A watching tool would restart the stopped dashboard before the orphan binds, so it is
    paused (SIGSTOP) while this is set up; the time runs from SIGCONT, when it can first see
    the failed unit. Without a tool (systemd alone) it runs from the failing start.
    """
    if scenario == "dead":
        old, _wall, t0 = signal_unit(box, "dashboard", signal.SIGKILL)
        return Fault(scenario, "dashboard", old, t0)
    if scenario == "hung":
        old, _wall, t0 = signal_unit(box, "dashboard", signal.SIGSTOP)
        return Fault(scenario, "dashboard", old, t0)
    if scenario == "stale":
        old, _wall, t0 = signal_unit(box, "trader", STALL)
        return Fault(scenario, "trader", old, t0)
    pid = box.main_pid("dashboard")
    old_proc = ProcId.of(pid, "dashboard")
    if old_proc is None:
        raise BenchError("dashboard.service has no live MainPID")
    orphan = None
    if pause is not None:
        pause()
    try:
        box.systemctl("stop", "dashboard.service")
        orphan = start_orphan(box)
        t0 = time.monotonic()
        box.systemctl("start", "dashboard.service")
        if resume is not None:
            wait(
                lambda: active_state(box, "dashboard") == "failed",
                10,
                "dashboard.service to fail to start (orphan on its port)",
                interval=0.02,
            )
    finally:
        if resume is not None:
            t0 = resume()
    return Fault(scenario, "dashboard", old_proc, t0, orphan)


def repair(box: Sandbox, fault: Fault) -> None:
    """Undo what is left of a fault: the orphan gone, the unit running and ready."""
    if fault.orphan is not None:
        stop_process(fault.orphan)
    if fault.old.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(fault.old.pid, signal.SIGCONT)  # alive and checked just now: ours
    if not box.ready(fault.program):
        box.reset_failed()
        box.systemctl("restart", f"{fault.program}.service")
    box.wait_ready(fault.program, SETTLE_TIMEOUT_S)
    box.reset_failed()


def describe_unit(box: Sandbox, program: str) -> str:
    props = box.show(program, "ActiveState", "SubState", "Result", "NRestarts", "MainPID")
    return (
        f"{props['ActiveState']} ({props['SubState']}), result {props['Result']}, "
        f"NRestarts {props['NRestarts']}, MainPID {props['MainPID']}"
    )


def outcome(values: list[float], missed: list[str], waited_s: float) -> dict[str, Any]:
    """Recovery times of one tool in one scenario, and the repetitions it did not recover."""
    result: dict[str, Any] = {"recovered": len(values), "not_recovered": len(missed)}
    if values:
        result.update(summary(values))
    if missed:
        result["waited_s"] = waited_s
        result["why"] = missed
    return result


# --- startup, idle, detection ---------------------------------------------------------------


def bench_startup(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    times = []
    for _ in range(s.startup_reps):
        build = partial(fleet_config, box, recovery=True)
        with supervisor(box, work, "startup", build) as sup:
            times.append(sup.ready_s)
    return summary(times)


def bench_idle(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    """Both supervisors (3 and 100 targets) at once: each one's CPU is its own /proc ticks."""
    extra = 97
    units = [f"gen{i}.service" for i in range(extra)]
    for unit in units:
        box.install_unit(unit, "[Service]\nExecStart=/bin/sleep infinity\n", reload=False)
    box.daemon_reload()
    box.systemctl("start", *units)
    try:
        build3 = partial(fleet_config, box, recovery=True)
        build100 = partial(fleet_config, box, recovery=True, extra_targets=extra)
        with (
            supervisor(box, work, "idle3", build3) as small,
            supervisor(box, work, "idle100", build100) as big,
        ):
            small.wait_pass()
            big.wait_pass()
            time.sleep(s.idle_settle_s)  # the first probes and caches are not idle cost
            pids = {"idle_3_targets": small.pid, "idle_100_targets": big.pid}
            cpu: dict[str, list[float]] = {k: [] for k in pids}
            rss: dict[str, list[float]] = {k: [] for k in pids}
            for w in range(s.idle_windows):
                c0 = {k: cpu_seconds(p) for k, p in pids.items()}
                t0 = time.monotonic()
                time.sleep(s.idle_window_s)
                elapsed = time.monotonic() - t0
                for k, p in pids.items():
                    cpu[k].append(100 * (cpu_seconds(p) - c0[k]) / elapsed)
                    rss[k].append(rss_mb(p))
                say(f"  idle window {w + 1}/{s.idle_windows} done")
            result: dict[str, Any] = {
                k: {"cpu_percent": summary(cpu[k]), "rss_mb": summary(rss[k])} for k in pids
            }
    finally:
        box.systemctl("stop", *units, check=False)
    result["import_rss_mb"] = bench_import_rss()
    return result


# What the supervisor's RSS is made of: a fresh interpreter importing what `supervisor run`
# imports, dependencies first, in this order (each figure is what that import adds on top).
IMPORT_ORDER = (
    "psutil",
    "pydantic",
    "pydantic_settings",
    "prometheus_client",
    "dbus_fast.aio",
    "aiohttp",
    "supervisor.cli",
    "supervisor.app.daemon",
)
_IMPORT_PROBE = """
import importlib, json, os, sys
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
out = [["python", rss()]]
for name in sys.argv[1:]:
    importlib.import_module(name)
    out.append([name, rss()])
print(json.dumps({"steps": out, "telegram": "telegram" in sys.modules}))
"""

# The dependencies alone, and without each big one (a model is defined when pydantic is there,
# as supervisor.config does: pydantic builds most of its machinery on the first model).
DEPENDENCIES = IMPORT_ORDER[:6]
LEAVE_OUT = {
    "aiohttp": ("aiohttp",),
    "pydantic and pydantic_settings": ("pydantic", "pydantic_settings"),
    "pydantic_settings": ("pydantic_settings",),
}
_DEPS_PROBE = """
import importlib, os, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
if "pydantic" in sys.argv[1:]:
    import pydantic
    class Model(pydantic.BaseModel):
        x: int = 0
print(int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20)
"""


def _python(script: str, *args: str) -> str:
    run = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    if run.returncode != 0:
        raise BenchError(f"measuring import RSS failed:\n{run.stderr}")
    return run.stdout


def bench_import_rss() -> dict[str, Any]:
    """RSS of a fresh interpreter after each import (cumulative, in IMPORT_ORDER), and of the
    dependencies alone with and without each big one."""
    found: dict[str, Any] = json.loads(_python(_IMPORT_PROBE, *IMPORT_ORDER))
    steps: list[list[Any]] = found["steps"]
    without = {
        what: round(float(_python(_DEPS_PROBE, *(d for d in DEPENDENCIES if d not in left))), 1)
        for what, left in LEAVE_OUT.items()
    }
    return {
        "dependencies_mb": round(float(_python(_DEPS_PROBE, *DEPENDENCIES)), 1),
        "dependencies_without_mb": without,
        "steps": [
            {"module": name, "rss_mb": round(mb, 1), "added_mb": round(mb - prev, 1)}
            for (name, mb), (_p, prev) in zip(steps, [steps[0], *steps[:-1]], strict=True)
        ],
        "telegram_loaded": found["telegram"],
    }


def bench_detection(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    """kill -9 trader (Restart=no, recovery off) -> fail in the snapshot and in GET /health."""
    build = partial(fleet_config, box, recovery=False)
    snapshot_ms, health_ms = [], []
    with supervisor(box, work, "detection", build) as sup:
        poll = HttpClient(sup.port)
        for i in range(s.kills):
            box.reset_failed()  # each start counts against the start limit (5 in 10 s)
            box.wait_ready("trader", SETTLE_TIMEOUT_S)
            sup.wait_pass()
            _old, killed, mono = signal_unit(box, "trader", signal.SIGKILL)
            while True:
                entry = poll.json("/health")["checks"]["trader"][0]
                if entry["status"] == "fail":
                    seen = time.time()
                    break
                if time.monotonic() - mono > DETECT_TIMEOUT_S:
                    raise BenchError(
                        f"/health still says {entry['status']} {DETECT_TIMEOUT_S:g} s after "
                        f"kill -9 of the trader:\n{tail(sup.log)}"
                    )
            snapshot_ms.append((parse_time(entry["since"]) - killed) * 1000)
            health_ms.append((seen - killed) * 1000)
            box.systemctl("start", "trader.service")
            if (i + 1) % 5 == 0:
                say(f"  {i + 1}/{s.kills} kills")
        poll.close()
    return {"snapshot_ms": percentiles(snapshot_ms), "health_ms": percentiles(health_ms)}


# --- recovery: the supervisor, Monit, systemd alone -----------------------------------------


def bench_supervisor_recovery(
    box: Sandbox, work: Path, s: Settings, rng: random.Random
) -> dict[str, Any]:
    build = partial(fleet_config, box, recovery=True, heartbeat_max_age_s=HEARTBEAT_MAX_AGE_S)
    results = {}
    with supervisor(box, work, "recovery", build) as sup:
        for scenario in SCENARIOS:
            values, missed = [], []
            for _ in range(s.reps[scenario]):
                box.reset_failed()
                sup.wait_pass()
                if scenario in ("hung", "stale"):  # found by probes: the phase matters
                    time.sleep(rng.uniform(0, PERIOD_S))
                fault = inject(box, scenario, sup.pause, sup.resume)
                took = wait_served(box, fault, RECOVERY_TIMEOUT_S)
                if took is None:
                    missed.append(f"not serving after {RECOVERY_TIMEOUT_S:g} s")
                else:
                    values.append(took)
                repair(box, fault)
            results[scenario] = outcome(values, missed, RECOVERY_TIMEOUT_S)
            say(f"  supervisor {scenario}: {fmt_outcome(results[scenario])}")
    return results


class Monit(Watcher):
    """`monit -I` in the foreground with its own control, pid, id, state and log files."""

    def __init__(self, work: Path, name: str, checks: str) -> None:
        self.dir = run_dir(work, f"monit-{name}")
        self.log = self.dir / "monit.log"
        rc = self.dir / "monitrc"
        rc.write_text(
            f"set daemon {PERIOD_S:g}\n"
            f"set pidfile {self.dir / 'monit.pid'}\n"
            f"set idfile {self.dir / 'monit.id'}\n"
            f"set statefile {self.dir / 'monit.state'}\n"
            f"set logfile {self.log}\n\n{checks}"
        )
        rc.chmod(0o600)  # monit refuses a control file others can read
        self.rc = rc
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.dir / "monit.out").open("ab") as out:
            self._proc = spawn(
                ["monit", "-I", "-c", str(self.rc)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
            )
        proc = self._proc
        wait(
            lambda: " started" in self.text() or proc.poll() is not None,
            10,
            "monit to start",
        )
        if proc.poll() is not None:
            raise BenchError(
                f"monit exited with {proc.returncode}:\n{tail(self.dir / 'monit.out')}"
            )

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def wait_ok(self, check: str, after: int) -> None:
        """Until monit logged that `check` is fine again (it acts only on state changes)."""

        def ok() -> bool:
            return any(
                f"'{check}'" in line and ("succeeded" in line or "is running" in line)
                for line in self.lines()[after:]
            )

        wait(ok, 3 * (PERIOD_S + TIMEOUT_S), f"monit to log '{check}' as fine again", 0.1)

    def stop(self) -> None:
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


def bench_monit_recovery(
    box: Sandbox, work: Path, s: Settings, rng: random.Random
) -> dict[str, Any]:
    results = {}
    for scenario in SCENARIOS:
        check, checks = monit_checks(box, scenario)
        # Monit cannot free a port: one repetition shows whether a restart alone recovers.
        reps = 1 if scenario == "orphan" else s.reps[scenario]
        limit = s.not_recovered_wait_s if scenario == "orphan" else RECOVERY_TIMEOUT_S
        values, missed = [], []
        mon = Monit(work, scenario, checks)
        try:
            mon.start()
            for i in range(reps):
                box.reset_failed()
                time.sleep(rng.uniform(0, PERIOD_S))  # Monit polls: the phase matters
                mark = len(mon.lines())
                fault = inject(box, scenario, mon.pause, mon.resume)
                took = wait_served(box, fault, limit)
                if took is None:
                    execs = sum(" exec: " in line for line in mon.lines()[mark:])
                    missed.append(
                        f"not serving after {limit:g} s; Monit ran `systemctl restart` "
                        f"{execs} times; unit: {describe_unit(box, fault.program)}"
                    )
                else:
                    values.append(took)
                    if i + 1 < reps:
                        mon.wait_ok(check, mark)
                if i + 1 == reps:
                    mon.stop()  # before repairing: it must not restart the unit meanwhile
                repair(box, fault)
        finally:
            mon.stop()
        results[scenario] = outcome(values, missed, limit)
        say(f"  monit {scenario}: {fmt_outcome(results[scenario])}")
    return results


def bench_systemd_recovery(box: Sandbox, s: Settings) -> dict[str, Any]:
    """Restart=on-failure and no watcher: it restarts what dies and sees nothing else."""
    for program in ("dashboard", "trader"):
        text = box.unit_text(program).replace("Restart=no", "Restart=on-failure")
        box.install_unit(f"{program}.service", text, reload=False)
    box.daemon_reload()
    box.systemctl("restart", "dashboard.service", "trader.service")
    results: dict[str, Any] = {}
    try:
        for program in ("dashboard", "trader"):
            box.wait_ready(program, SETTLE_TIMEOUT_S)
        values, missed = [], []
        for _ in range(s.reps["dead"]):
            box.reset_failed()
            box.wait_ready("dashboard", SETTLE_TIMEOUT_S)
            fault = inject(box, "dead")
            took = wait_served(box, fault, RECOVERY_TIMEOUT_S)
            if took is None:
                missed.append(f"not serving after {RECOVERY_TIMEOUT_S:g} s")
            else:
                values.append(took)
            repair(box, fault)
        results["dead"] = outcome(values, missed, RECOVERY_TIMEOUT_S)
        say(f"  systemd dead: {fmt_outcome(results['dead'])}")
        # Nothing in systemd can notice these; hung and stale share one wait (other units).
        for group in (("hung", "stale"), ("orphan",)):
            results.update(watch_unrecovered(box, group, s.not_recovered_wait_s))
    finally:
        box.restore_fleet()  # the standard units (Restart=no) again
    return results


def watch_unrecovered(box: Sandbox, group: tuple[str, ...], wait_s: float) -> dict[str, Any]:
    """Put the faults in place with no watcher but systemd; see whether anything recovers."""
    box.reset_failed()
    faults = [inject(box, scenario) for scenario in group]
    recovered: dict[str, float] = {}
    end = faults[0].t0 + wait_s
    while time.monotonic() < end:
        for fault in faults:
            took = served_again(box, fault)
            if took is not None:
                recovered.setdefault(fault.scenario, took)
        time.sleep(0.1)
    results = {}
    for fault in faults:
        took = recovered.get(fault.scenario)
        waited = time.monotonic() - fault.t0
        if took is not None:
            results[fault.scenario] = outcome([took], [], waited)
        else:
            why = f"not serving after {waited:.0f} s; unit: {describe_unit(box, fault.program)}"
            results[fault.scenario] = outcome([], [why], round(waited, 1))
        repair(box, fault)
        say(f"  systemd {fault.scenario}: {fmt_outcome(results[fault.scenario])}")
    return results


# --- /health under load ---------------------------------------------------------------------

_WRK_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(text: str) -> dict[str, Any]:
    def ms(value: str) -> float:
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
        if m is None:
            raise BenchError(f"cannot read wrk's latency {value!r}")
        return float(m.group(1)) * _WRK_UNITS_MS[m.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+\w+)", text, re.M)
    if rps is None or total is None:
        raise BenchError(f"cannot read wrk's output:\n{text}")
    lat = {p: ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)),
        "p50_ms": lat.get("50"),
        "p90_ms": lat.get("90"),
        "p99_ms": lat.get("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def max_gap(pings: list[float], start: float, end: float) -> float:
    """The longest time without WATCHDOG=1 within [start, end] (the last ping before start
    counts; at the end, the time since the last ping counts)."""
    before = [t for t in pings if t < start][-1:]
    seq = before + [t for t in pings if start <= t <= end]
    if not seq:
        return end - start
    gaps = [b - a for a, b in itertools.pairwise(seq)]
    return max([*gaps, end - seq[-1], (seq[0] - start) if not before else 0.0])


def bench_load(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    build = partial(fleet_config, box, recovery=True)
    levels = []
    with supervisor(box, work, "load", build, watchdog_usec=WATCHDOG_USEC) as sup:
        sup.wait_pass()
        # Every probe has run once (first runs are spread over a period): counts are comparable.
        wait(
            lambda: len(sup.probe_runs()) == FLEET_PROBES,
            PERIOD_S + SETTLE_TIMEOUT_S,
            f"all {FLEET_PROBES} probes to have run",
            interval=0.2,
        )
        url = f"http://127.0.0.1:{sup.port}/health"
        runs0, t0 = sup.probe_runs(), time.monotonic()
        for conns in (1, 10, 100):
            threads = min(2, conns)  # wrk needs at least one connection per thread
            cmd = ["wrk", "--latency", f"-t{threads}", f"-c{conns}", f"-d{s.wrk_s}s"]
            before = sup.probe_runs()
            w0 = time.monotonic()
            proc = spawn([*cmd, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                out, _ = proc.communicate(timeout=s.wrk_s + 30)
            except subprocess.TimeoutExpired:
                raise BenchError(f"wrk did not finish within {s.wrk_s + 30} s") from None
            finally:
                stop_process(proc)
            w1 = time.monotonic()
            if proc.returncode != 0:
                raise BenchError(f"wrk failed ({proc.returncode}):\n{out}")
            after = sup.probe_runs()
            level = parse_wrk(out)
            level.update(
                connections=conns,
                threads=threads,
                duration_s=round(w1 - w0, 2),
                watchdog_max_gap_s=round(max_gap(sup.watchdog, w0, w1), 3),
                probe_runs=sum(after.values()) - sum(before.values()),
                probe_runs_expected=round(FLEET_PROBES * (w1 - w0) / PERIOD_S, 1),
            )
            levels.append(level)
            say(
                f"  wrk -c{conns}: {level['rps']:.0f} req/s, p99 {level['p99_ms']:.2f} ms, "
                f"watchdog gap {level['watchdog_max_gap_s']:.2f} s"
            )
        runs1, t1 = sup.probe_runs(), time.monotonic()
        statuses = sup.statuses()
    per_probe = {k: runs1[k] - runs0.get(k, 0.0) for k in runs1}
    expected = (t1 - t0) / PERIOD_S
    return {
        "levels": levels,
        "watchdog_usec": WATCHDOG_USEC,
        "watchdog_limit_s": WATCHDOG_USEC / 2e6 + WATCHDOG_SLACK_S,
        "watchdog_max_gap_s": max(level["watchdog_max_gap_s"] for level in levels),
        "probe_runs": per_probe,
        "probe_runs_expected_each": round(expected, 2),
        # Start-to-start periods: each probe runs floor() or ceil() times in the window.
        "probes_on_schedule": all(v >= int(expected) for v in per_probe.values()),
        "statuses_after": statuses,
    }


# --- output -----------------------------------------------------------------------------------


def fmt_s(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def fmt_outcome(o: dict[str, Any] | None) -> str:
    if o is None:
        return "not run"
    if not o.get("recovered"):
        return f"not recovered within {o['waited_s']:g} s"
    text = f"{fmt_s(o['median'])} ({o['min']:.2f}-{o['max']:.2f}, n={o['n']})"
    if o.get("not_recovered"):
        text += f"; {o['not_recovered']} not recovered"
    return text


def ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> str:
    if not ours or not theirs or not ours.get("recovered"):
        return "n/a"
    if not theirs.get("recovered"):
        return "n/a (they did not recover)"
    return f"{ours['median'] / theirs['median']:.2f}x"


def evaluate(r: dict[str, Any]) -> list[dict[str, str]]:
    """Measured against goal, pass or miss, for every target the run has figures for."""
    rows: list[dict[str, str]] = []

    def add(name: str, measured: str, goal: str, ok: bool) -> None:
        rows.append(
            {"target": name, "measured": measured, "goal": goal, "result": "pass" if ok else "miss"}
        )

    det = r.get("detection")
    if det:
        for key, words in (("snapshot_ms", "snapshot `since`"), ("health_ms", "first GET /health")):
            p99 = det[key]["p99"]
            add(f"detection p99 (kill -9 -> {words})", f"{p99:.1f} ms", "< 100 ms", p99 < 100)
    rec = r.get("recovery", {})
    dead = rec.get("dead", {}).get("supervisor")
    if dead and dead.get("recovered"):
        m = dead["median"]
        add("dead unit (Restart=no) serving again, median", fmt_s(m), "< 1.5 s", m < 1.5)
    hung = rec.get("hung", {}).get("supervisor")
    if hung and hung.get("recovered"):
        m = hung["median"]
        add("hung process recovered (defaults), median", fmt_s(m), "< 12 s", m < 12)
        monit = rec.get("hung", {}).get("monit")
        if monit and monit.get("recovered"):
            x = m / monit["median"]
            add("hung: supervisor / Monit (3 failures each)", f"{x:.2f}x", "≤ 0.75x", x <= 0.75)
    idle = r.get("idle")
    if idle:
        cpu3 = idle["idle_3_targets"]["cpu_percent"]["median"]
        rss3 = idle["idle_3_targets"]["rss_mb"]["median"]
        cpu100 = idle["idle_100_targets"]["cpu_percent"]["median"]
        add("idle CPU, 3 targets (% of one core)", f"{cpu3:.3f} %", "< 0.2 %", cpu3 < 0.2)
        add("RSS, 3 targets", f"{rss3:.1f} MB", "< 50 MB", rss3 < 50)
        add("idle CPU, 100 targets", f"{cpu100:.3f} %", "< 2 %", cpu100 < 2)
    load = r.get("load")
    if load:
        ten = next(level for level in load["levels"] if level["connections"] == 10)
        ok = ten["rps"] >= 3000 and ten["p99_ms"] < 10 and not ten["non_2xx"]
        add(
            "GET /health at 10 connections",
            f"{ten['rps']:,.0f} req/s, p99 {ten['p99_ms']:.2f} ms",
            "≥ 3,000 req/s, p99 < 10 ms",
            ok,
        )
        gap, limit = load["watchdog_max_gap_s"], load["watchdog_limit_s"]
        add("watchdog: longest ping gap under load", f"{gap:.2f} s", f"≤ {limit:g} s", gap <= limit)
        runs = load["probe_runs"]
        add(
            "probes on schedule under load",
            f"{min(runs.values()):.0f}-{max(runs.values()):.0f} runs per probe",
            f"≥ {int(load['probe_runs_expected_each'])} each",
            load["probes_on_schedule"],
        )
    start = r.get("startup_ready_s")
    if start:
        add(
            "startup to READY=1 (slowest of all starts)",
            f"{start['max']:.2f} s (median {start['median']:.2f})",
            "< 1 s",
            start["max"] < 1,
        )
    return rows


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        f"sidecar-supervisor {m['supervisor']} ({m['commit']}, source {m['source']}) on "
        f"{m['cores']} cores "
        f"({m['cpu']}), kernel {m['kernel']}; {m['python']}, {m['systemd']}, "
        f"{m['monit']}, {m['wrk']}; load average {m['loadavg_start']} at start, "
        f"{m['loadavg_end']} at end; {'--quick' if r['settings']['quick'] else 'full'} run "
        f"in {r['runtime_s']:.0f} s, seed {r['settings']['seed']}",
        "",
    ]
    if m["source"] != m["source_end"]:
        out[0:0] = [
            f"**WARNING: supervisor/ changed during the run (source {m['source']} at the "
            f"start, {m['source_end']} at the end): figures may mix two versions.**",
            "",
        ]
    for part in (md_overhead, md_detection, md_recovery, md_load, md_targets):
        out += part(r)
    return "\n".join(out)


def md_overhead(r: dict[str, Any]) -> list[str]:
    if "startup_ready_s" not in r and "idle" not in r:
        return []
    out = ["| measure | median | min | max | n |", "|---|---|---|---|---|"]
    if "startup_ready_s" in r:
        out.append(row("startup to READY=1", r["startup_ready_s"], "s"))
    if "idle" in r:
        i3, i100 = r["idle"]["idle_3_targets"], r["idle"]["idle_100_targets"]
        w = f"{r['settings']['idle_window_s']:g} s windows"
        out.append(row(f"idle CPU, 3 targets ({w})", i3["cpu_percent"], "%"))
        out.append(row("RSS, 3 targets", i3["rss_mb"], "MB"))
        out.append(row(f"idle CPU, 100 targets ({w})", i100["cpu_percent"], "%"))
        out.append(row("RSS, 100 targets", i100["rss_mb"], "MB"))
        imports = r["idle"].get("import_rss_mb")
        if imports:
            steps = imports["steps"]
            parts = [f"{steps[0]['rss_mb']:.1f} bare"]
            parts += [f"{x['module']} +{x['added_mb']:.1f}" for x in steps[1:]]
            loaded = "loaded" if imports["telegram_loaded"] else "not loaded"
            without = ", ".join(
                f"without {k} {v:.1f} MB" for k, v in imports["dependencies_without_mb"].items()
            )
            out += [
                "",
                "RSS of a fresh interpreter importing what `supervisor run` imports, in turn "
                f"(MB): {', '.join(parts)} = {steps[-1]['rss_mb']:.1f} MB "
                f"(python-telegram-bot {loaded}). The dependencies alone: "
                f"{imports['dependencies_mb']:.1f} MB; {without}.",
            ]
    return [*out, ""]


def md_detection(r: dict[str, Any]) -> list[str]:
    det = r.get("detection")
    if not det:
        return []
    out = [
        "Detection latency, kill -9 of trader's main process (Restart=no, recovery off):",
        "",
        "| from kill -9 to | p50 | p99 | max | n |",
        "|---|---|---|---|---|",
    ]
    for key, words in (
        ("snapshot_ms", "the supervisor's snapshot (`since` in /health)"),
        ("health_ms", "the first GET /health that says fail"),
    ):
        d = det[key]
        out.append(
            f"| {words} | {d['p50']:.1f} ms | {d['p99']:.1f} ms | {d['max']:.1f} ms | {d['n']} |"
        )
    return [*out, ""]


def md_recovery(r: dict[str, Any]) -> list[str]:
    rec = r.get("recovery")
    if not rec or not any(rec.values()):
        return []
    out = [
        "Recovery time, from the fault to the unit serving again from a new process "
        "(median (min-max, n)):",
        "",
        "| fault | supervisor | Monit | systemd alone | supervisor / Monit "
        "| supervisor / systemd |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "dead": "dead process (kill -9 dashboard)",
        "hung": "hung process (SIGSTOP dashboard)",
        "stale": "stale heartbeat (trader stall-heartbeat)",
        "orphan": "orphan holding the dashboard's port",
    }
    for scenario in SCENARIOS:
        by = rec.get(scenario, {})
        ours, monit, sysd = by.get("supervisor"), by.get("monit"), by.get("systemd")
        out.append(
            f"| {names[scenario]} | {fmt_outcome(ours)} | {fmt_outcome(monit)} "
            f"| {fmt_outcome(sysd)} | {ratio(ours, monit)} | {ratio(ours, sysd)} |"
        )
    notes = [
        f"- {tool} / {scenario}: {why}"
        for scenario in SCENARIOS
        for tool, o in rec.get(scenario, {}).items()
        for why in (o or {}).get("why", [])
    ]
    if notes:
        out += ["", "Not recovered:", *notes]
    return [*out, ""]


def md_load(r: dict[str, Any]) -> list[str]:
    load = r.get("load")
    if not load:
        return []
    out = [
        f"GET /health under load (wrk, {r['settings']['wrk_s']} s per level; watchdog "
        f"WATCHDOG_USEC={load['watchdog_usec']}, pings due every "
        f"{load['watchdog_usec'] / 2e6:g} s):",
        "",
        "| connections | req/s | p50 | p90 | p99 | non-2xx | socket errors "
        "| longest watchdog gap | probe runs (expected) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lv in load["levels"]:
        out.append(
            f"| {lv['connections']} (-t{lv['threads']}) | {lv['rps']:,.0f} "
            f"| {lv['p50_ms']:.2f} ms | {lv['p90_ms']:.2f} ms | {lv['p99_ms']:.2f} ms "
            f"| {lv['non_2xx']} | {lv['socket_errors']} | {lv['watchdog_max_gap_s']:.2f} s "
            f"| {lv['probe_runs']:.0f} ({lv['probe_runs_expected']:g}) |"
        )
    runs = ", ".join(f"{k}: {v:.0f}" for k, v in load["probe_runs"].items())
    expected = load["probe_runs_expected_each"]
    return [
        *out,
        "",
        f"Probe runs over the whole load phase: {runs} (expected about {expected:g} each).",
        "",
    ]


def md_targets(r: dict[str, Any]) -> list[str]:
    targets = r.get("targets", [])
    if not targets:
        return []
    out = ["Targets:", "", "| target | measured | goal | result |", "|---|---|---|---|"]
    for x in targets:
        result = x["result"] if x["result"] == "pass" else f"**{x['result']}**"
        out.append(f"| {x['target']} | {x['measured']} | {x['goal']} | {result} |")
    return out


def row(name: str, s: dict[str, Any], unit: str) -> str:
    return f"| {name} | {s['median']:.3f} {unit} | {s['min']:.3f} | {s['max']:.3f} | {s['n']} |"


# --- main -------------------------------------------------------------------------------------


def first_line(cmd: list[str]) -> str:
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{cmd[0]}: {exc}"
    return (run.stdout or run.stderr).strip().splitlines()[0] if (run.stdout or run.stderr) else ""


def source_hash() -> str:
    """A digest of the supervisor's source: the code every supervisor of the run imports."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "supervisor").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> dict[str, Any]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = first_line(["git", "-C", str(REPO), "status", "--porcelain", "--", "supervisor"])
    wrk = first_line(["wrk", "-v"]).split(" Copyright")[0]
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": first_line([str(REPO / ".venv" / "bin" / "python"), "--version"]),
        "systemd": first_line(["systemctl", "--version"]),
        "monit": first_line(["monit", "-V"]).replace("This is ", ""),
        "wrk": wrk,
        "supervisor": __version__,
        "commit": commit + ("+changes" if dirty else ""),
        "source": source_hash(),
        "loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_sections(
    box: Sandbox,
    work: Path,
    s: Settings,
    rng: random.Random,
    *,
    sections: set[str],
    results: dict[str, Any],
) -> None:
    """Each chosen section in turn; results go into `results` as they come."""
    recovery: dict[str, dict[str, Any]] = {k: {} for k in SCENARIOS}
    results["recovery"] = recovery
    if "startup" in sections:
        say(f"startup to READY=1, {s.startup_reps} starts")
        results["startup_ready_s"] = bench_startup(box, work, s)
    if "idle" in sections:
        say(f"idle CPU/RSS, 3 and 100 targets, {s.idle_windows} x {s.idle_window_s:g} s")
        results["idle"] = bench_idle(box, work, s)
    if "detection" in sections:
        say(f"detection latency, {s.kills} kills")
        results["detection"] = bench_detection(box, work, s)
    tools: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
        ("supervisor", "the supervisor", lambda: bench_supervisor_recovery(box, work, s, rng)),
        ("monit", "Monit", lambda: bench_monit_recovery(box, work, s, rng)),
        ("systemd", "systemd alone (Restart=on-failure)", lambda: bench_systemd_recovery(box, s)),
    ]
    for key, words, bench in tools:
        if key in sections:
            say(f"recovery by {words}")
            for scenario, result in bench().items():
                recovery[scenario][key] = result
    if "load" in sections:
        say(f"GET /health under load, {s.wrk_s} s per level")
        results["load"] = bench_load(box, work, s)


def run(args: argparse.Namespace) -> dict[str, Any]:
    s = Settings.make(args.quick)
    sections = set(args.only or SECTIONS)
    for tool, needed in (("monit", "monit" in sections), ("wrk", "load" in sections)):
        if needed and shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (apt-get install {tool}), or leave it out")
    if not SUPERVISOR_BIN.exists():
        raise BenchError(f"{SUPERVISOR_BIN} is missing: run ./scripts/bootstrap.sh dev first")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": {
            "quick": s.quick,
            "seed": seed,
            "sections": [x for x in SECTIONS if x in sections],
            "startup_reps": s.startup_reps,
            "idle_windows": s.idle_windows,
            "idle_window_s": s.idle_window_s,
            "kills": s.kills,
            "recovery_reps": s.reps,
            "not_recovered_wait_s": s.not_recovered_wait_s,
            "wrk_s": s.wrk_s,
            "probe": {"period_s": PERIOD_S, "timeout_s": TIMEOUT_S, "threshold": FAILURE_THRESHOLD},
        },
    }
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp:
        work = Path(tmp)
        box = Sandbox(work / "sandbox", dashboard_port=free_port(), restart="no")
        try:
            say(f"sandbox up under {box.root} (dashboard on :{box.dashboard_port})")
            box.up()
            run_sections(box, work, s, rng, sections=sections, results=results)
        finally:
            say("tearing down")
            stop_children()
            try:
                box.down()
            except Exception as exc:
                say(f"sandbox teardown failed: {exc}")
    results["machine"]["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results["machine"]["source_end"] = source_hash()
    results["runtime_s"] = round(time.monotonic() - _started, 1)
    results["targets"] = evaluate(results)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs (< 3 min)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--seed", type=int, help="seed of the random fault delays")
    parser.add_argument("--save", type=Path, metavar="FILE", help="also write the JSON to FILE")
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, metavar="SECTION", help=f"of {', '.join(SECTIONS)}"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGHUP, _interrupted)
    try:
        results = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; everything was torn down", file=sys.stderr)
        return 130
    if args.save:
        args.save.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2) if args.json else markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
