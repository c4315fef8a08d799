"""The watching processes a run measures: `supervisor run` (with its config, NOTIFY_SOCKET
and HTTP client) and, in `devtools.bench.monit`, Monit. Both can be held still (SIGSTOP)
while a scenario sets up its fault."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from devtools.bench.processes import spawn, stop_process, tail
from devtools.bench.settings import (
    PERIOD_S,
    READY_TIMEOUT_S,
    SETTLE_TIMEOUT_S,
    SUPERVISOR_BIN,
    BenchError,
)
from devtools.net import free_port
from devtools.sandbox import Sandbox, wait_for


class HttpClient:
    """One keep-alive connection to 127.0.0.1:port, reopened when it breaks."""

    def __init__(self, port: int, timeout: float = 2.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, bytes]:
        """Status and body of GET `path`; one retry on a fresh connection."""
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
        """The body of GET `path`, parsed."""
        _status, body = self.get(path)
        doc: dict[str, Any] = json.loads(body)
        return doc

    def health(self) -> dict[str, Any] | None:
        """GET /health's document, or None when the supervisor throttled the request (429:
        it is over its CPU budget, and such an answer has no `checks`)."""
        status, body = self.get("/health")
        if status == 429:
            return None
        doc: dict[str, Any] = json.loads(body)
        if "checks" not in doc:
            raise BenchError(f"GET /health answered {status} without checks: {body[:200]!r}")
        return doc

    def served(self, path: str, timeout: float = SETTLE_TIMEOUT_S) -> bytes:
        """The body of GET `path` once it is served rather than throttled (a load phase can
        leave the supervisor over its CPU budget for a while)."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.get(path)
            if status != 429:
                return body
            if time.monotonic() > deadline:
                raise BenchError(f"GET {path} still throttled (429) after {timeout:g} s")
            time.sleep(0.2)

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Watcher:
    """A watching process (ours or Monit) that a scenario may hold still while it sets up."""

    _proc: subprocess.Popen[bytes] | None = None

    def pause(self) -> None:
        """SIGSTOP: it sees nothing until `resume`."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> float:
        """SIGCONT; returns the monotonic time just before it."""
        assert self._proc is not None
        now = time.monotonic()
        self._proc.send_signal(signal.SIGCONT)
        return now


class NotifyListener:
    """A NOTIFY_SOCKET as systemd has it: a datagram socket read by a thread, which notes
    when READY=1 came and every WATCHDOG=1."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.watchdog: list[float] = []  # monotonic times of WATCHDOG=1
        self.ready = threading.Event()
        self.ready_at = 0.0
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket and start reading it."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        sock.settimeout(0.2)
        self._sock = sock
        self._reader = threading.Thread(target=self._read, name="notify", daemon=True)
        self._reader.start()

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
                if line == "READY=1" and not self.ready.is_set():
                    self.ready_at = now
                    self.ready.set()
                elif line == "WATCHDOG=1":
                    self.watchdog.append(now)

    def stop(self) -> None:
        """Stop reading and close the socket."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(2)
        if self._sock is not None:
            self._sock.close()


class Supervisor(Watcher):
    """A `supervisor run` process: own config, state dir, log, port and NOTIFY_SOCKET."""

    def __init__(
        self, box: Sandbox, run_dir: Path, port: int, config: str, watchdog_usec: int | None
    ) -> None:
        self.box = box
        self.dir = run_dir
        self.port = port
        self.config = config
        self.log = run_dir / "supervisor.log"
        self.watchdog_usec = watchdog_usec
        self.notify = NotifyListener(run_dir / "notify")
        self.watchdog = self.notify.watchdog  # monotonic times of WATCHDOG=1
        self.ready_s = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self.client = HttpClient(port)

    @property
    def pid(self) -> int:
        """Its PID (it is running)."""
        assert self._proc is not None
        return self._proc.pid

    def running(self) -> bool:
        """True until it exits."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start it and wait for READY=1; `ready_s` is the time from Popen to READY=1."""
        (self.dir / "config.toml").write_text(self.config)
        self.notify.start()
        env = {**os.environ, **self.box.env(), "NOTIFY_SOCKET": str(self.notify.path)}
        env.pop("WATCHDOG_PID", None)
        env.pop("WATCHDOG_USEC", None)
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        cmd = [str(SUPERVISOR_BIN), "run", "--config", str(self.dir / "config.toml")]
        with self.log.open("ab") as log:
            started = time.monotonic()
            self._proc = spawn(
                [*cmd, "--log-level", "INFO"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = started + READY_TIMEOUT_S
        while not self.notify.ready.wait(0.05):
            if self._proc.poll() is not None:
                raise BenchError(
                    f"the supervisor exited with {self._proc.returncode} before READY=1:\n"
                    f"{tail(self.log)}"
                )
            if time.monotonic() > deadline:
                raise BenchError(f"no READY=1 within {READY_TIMEOUT_S:g} s:\n{tail(self.log)}")
        self.ready_s = self.notify.ready_at - started

    def stop(self) -> None:
        """Stop the process and the NOTIFY_SOCKET reader."""
        self.client.close()
        if self._proc is not None:
            stop_process(self._proc, timeout=15)
        self.notify.stop()

    def statuses(self) -> dict[str, str]:
        """Each target's status in /health."""
        doc = json.loads(self.client.served("/health"))
        return {name: entries[0]["status"] for name, entries in doc["checks"].items()}

    def wait_pass(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Until every target passes in /health; the error quotes the last statuses."""

        def all_pass() -> bool:
            try:
                return all(s == "pass" for s in self.statuses().values())
            except (OSError, http.client.HTTPException, ValueError):
                return False

        try:
            wait_for(all_pass, timeout, "every target to pass in /health", interval=0.05)
        except TimeoutError as exc:
            try:
                last: object = self.statuses()
            except (OSError, http.client.HTTPException, ValueError) as why:
                last = f"/health unreadable: {why}"
            raise BenchError(f"{exc}; last statuses: {last}\n{tail(self.log)}") from None

    def probe_runs(self) -> dict[str, float]:
        """supervisor_probe_runs_total per {target,type} from /metrics."""
        body = self.client.served("/metrics")
        runs = {}
        for m in re.finditer(
            r"^supervisor_probe_runs_total\{([^}]*)\} (\S+)$", body.decode(), re.M
        ):
            runs[m.group(1)] = float(m.group(2))
        return runs


_run_dirs: dict[str, int] = {}


def run_dir(work: Path, name: str) -> Path:
    """A fresh directory `<work>/<name>-N` for one watcher's files."""
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
    history: bool = True,
    api_key: str | None = None,
    extra: str = "",
    stuck_evidence: bool = True,
    period_s: float = PERIOD_S,
) -> str:
    """The demo fleet at default probe settings (plus `extra_targets` heartbeat targets), but
    for the three demo probes' `period_s` when given (the smoke run's shorter waits).

    The breaker is off: the benchmarks load both cores on purpose, and an open breaker pauses
    probes. The history is on (its default) unless `history` is False. `api_key` goes into
    [http]; `extra` is TOML tables added at the end (e.g. `[alerts.telegram]`). With recovery
    on, every attempt is immediate (backoff_s = [0]) and there is no give-up in reach, so every
    repetition is the first attempt of a fresh incident.
    """

    def recovery_toml(actions: str) -> str:
        if not recovery:
            return "  [targets.recovery]\n  enabled = false\n"
        return (
            f"  [targets.recovery]\n  enabled = true\n  actions = {actions}\n"
            "  max_attempts = 1000\n  backoff_s = [0.0]\n"
        )

    hb = box.heartbeat_path
    key = "" if api_key is None else f"api_key = {json.dumps(api_key)}\n"
    text = f"""state_dir = {json.dumps(str(state_dir))}
[http]
{key}port = {port}
[breaker]
enabled = false
[history]
enabled = {json.dumps(history)}
[[targets]]
name = "trader"
unit = "trader.service"
critical = true
  [[targets.probes]]
  type = "heartbeat"
  path = {json.dumps(str(hb("trader")))}
  max_age_s = {heartbeat_max_age_s}
  period_s = {period_s}
{recovery_toml('["restart"]')}
[[targets]]
name = "dashboard"
unit = "dashboard.service"
ports = [{box.dashboard_port}]
  [[targets.probes]]
  type = "http"
  url = "http://127.0.0.1:{box.dashboard_port}/health"
  stuck_evidence = {json.dumps(stuck_evidence)}
  period_s = {period_s}
{recovery_toml('["restart", "free-port"]')}
[[targets]]
name = "position-monitor"
unit = "position-monitor.service"
  [[targets.probes]]
  type = "heartbeat"
  path = {json.dumps(str(hb("position-monitor")))}
  max_age_s = 15
  period_s = {period_s}
{recovery_toml('["restart"]')}
"""
    for i in range(extra_targets):
        text += (
            f'[[targets]]\nname = "gen{i}"\nunit = "gen{i}.service"\n'
            f'  [[targets.probes]]\n  type = "heartbeat"\n'
            f"  path = {json.dumps(str(hb('trader')))}\n  max_age_s = 15\n"
        )
    return text + extra
