"""What the run watches, each on its own thread: the supervisor's /health (10 times a second,
timed), its /metrics (recovery counters), the supervisor's log and state file, and its
footprint in /proc (systemd's view of the units: `devtools.chaos.ground`).

Every poller adds to the shared `Record` and to a `Feed` the controller drains each tick.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.chaos.host import HostReader
from devtools.chaos.record import (
    ActionDelta,
    HealthSample,
    Incarnation,
    LogEvent,
    ProcSample,
    Record,
)
from supervisor.probing.resources import ProcReader

HEALTH_INTERVAL_S = 0.1
METRICS_INTERVAL_S = 1.0
LOG_INTERVAL_S = 0.2
PROC_INTERVAL_S = 1.0
HTTP_TIMEOUT_S = 2.0
# Lines of the supervisor's log that mark what the run waits for.
LOG_EVENTS = {
    "reexec": re.compile(r"systemd re-executed: following its new bus name"),
    "reloaded": re.compile(r"reloaded: watching \d+ targets"),
    "reload-rejected": re.compile(r"reload rejected"),
    "bus-lost": re.compile(r"D-Bus: .*; retrying in"),
    "bus-back": re.compile(r"reconnected to the bus"),
    "delivery-failed": re.compile(r"alert delivery to chat -?\d+ failed"),
    "restarted": re.compile(r"supervisor restarted: "),
    "traceback": re.compile(r"^Traceback \(most recent call last\)"),
    "give-up": re.compile(r"giving up on \S+ \("),
}
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
_ACTION = re.compile(r"^supervisor_recovery_actions_total\{([^}]*)\} (\S+)$", re.M)
_OUTBOX = re.compile(r"^supervisor_alert_outbox_messages (\S+)$", re.M)
_OLDEST = re.compile(r"^supervisor_alert_outbox_oldest_age_seconds (\S+)$", re.M)
_INCIDENTS = re.compile(r"^supervisor_alert_incidents_open (\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class Feed:
    """What arrived since the controller last looked, and the latest of each, under a lock."""

    record: Record
    lock: threading.Lock = field(default_factory=threading.Lock)
    health: list[HealthSample] = field(default_factory=list)
    incarnations: list[Incarnation] = field(default_factory=list)
    actions: list[ActionDelta] = field(default_factory=list)
    events: list[LogEvent] = field(default_factory=list)
    latest: HealthSample | None = None  # the last /health that answered with a document
    main_pid: dict[str, int] = field(default_factory=dict)
    main_started: dict[str, float] = field(default_factory=dict)  # when that process started
    outbox: int | None = None  # alerts waiting for delivery, per /metrics (None: unknown)
    outbox_in_file: int | None = None  # the same, per the state file
    outbox_since: float = 0.0  # when the oldest waiting alert was queued (inf: none waits)
    incidents: int | None = None  # incidents the supervisor holds open, per /metrics

    def add(self, name: str, item: Any) -> None:
        """Record `item` in the Record's list `name` and in the feed's own."""
        with self.lock:
            getattr(self.record, name).append(item)
            if hasattr(self, name):
                getattr(self, name).append(item)
            if isinstance(item, HealthSample) and item.statuses:
                self.latest = item  # a health document (not a 429 or a refused connection)

    def drain(
        self,
    ) -> tuple[list[HealthSample], list[Incarnation], list[ActionDelta], list[LogEvent]]:
        """Everything new since the last drain."""
        with self.lock:
            batch = (self.health, self.incarnations, self.actions, self.events)
            self.health, self.incarnations, self.actions, self.events = [], [], [], []
        return batch


class Poller(threading.Thread):
    """Calls `poll` every `interval` seconds until stopped; an error is recorded, not fatal."""

    def __init__(self, name: str, interval: float, feed: Feed) -> None:
        super().__init__(name=f"chaos-{name}", daemon=True)
        self.interval = interval
        self.feed = feed
        self.halt = threading.Event()

    def run(self) -> None:
        """The loop."""
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                self.poll()
            except Exception as exc:  # a poller must outlive any one bad reading
                with self.feed.lock:
                    self.feed.record.errors.append(f"{self.name}: {exc!r}")
            self.halt.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def poll(self) -> None:
        """One reading."""
        raise NotImplementedError

    def stop(self) -> None:
        """Ask it to stop and wait for it."""
        self.halt.set()
        self.join(HTTP_TIMEOUT_S + 5)


def http_get(port: int, path: str, timeout: float = HTTP_TIMEOUT_S) -> tuple[int, bytes, float]:
    """GET on a fresh connection to 127.0.0.1:`port`: status, body, seconds it took."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    return response.status, body, time.perf_counter() - started


@dataclass(frozen=True)
class Health:
    """What a health document says of each target, and its notes."""

    statuses: dict[str, str] = field(default_factory=dict)  # unknown where `state` says so
    outputs: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    critical: tuple[str, ...] = ()


def parse_health(doc: dict[str, Any]) -> Health:
    """Read a /health document."""
    checks = doc.get("checks", {})
    critical = tuple(sorted(n for n, entries in checks.items() if entries[0].get("critical")))
    health = Health(notes=str(doc.get("output", "")), critical=critical)
    for name, entries in checks.items():
        entry = entries[0]
        health.statuses[name] = entry.get("state", entry.get("status", "?"))
        health.outputs[name] = str(entry.get("output", ""))
    return health


class HealthPoller(Poller):
    """GET /health, timed, ten times a second."""

    def __init__(self, feed: Feed, port: int, life: Callable[[], int]) -> None:
        super().__init__("health", HEALTH_INTERVAL_S, feed)
        self.port = port
        self.life = life

    def poll(self) -> None:
        """One timed request."""
        at, life = time.time(), self.life()
        try:
            code, body, took = http_get(self.port, "/health")
        except (OSError, http.client.HTTPException):
            self.feed.add("health", HealthSample(at, None, 0, {}, {}, "", life))
            return
        h = parse_health(json.loads(body)) if code in (200, 503) else Health()
        sample = HealthSample(at, took, code, h.statuses, h.outputs, h.notes, life, h.critical)
        self.feed.add("health", sample)


def parse_actions(text: str) -> dict[tuple[str, str, str], float]:
    """supervisor_recovery_actions_total by (target, action, result)."""
    counts = {}
    for labels, value in _ACTION.findall(text):
        found = dict(_LABEL.findall(labels))
        key = (found.get("target", ""), found.get("action", ""), found.get("result", ""))
        counts[key] = float(value)
    return counts


class MetricsPoller(Poller):
    """GET /metrics every second: what recovery did since the last scrape."""

    def __init__(self, feed: Feed, port: int, life: Callable[[], int]) -> None:
        super().__init__("metrics", METRICS_INTERVAL_S, feed)
        self.port = port
        self.life = life
        self._last: dict[tuple[str, str, str], float] = {}
        self._last_life = 0
        self._last_at = time.time()

    def poll(self) -> None:
        """One scrape; counters start again from zero in a new life of the supervisor."""
        life, at = self.life(), time.time()
        try:
            code, body, _took = http_get(self.port, "/metrics")
        except (OSError, http.client.HTTPException):
            code, body = 0, b""
        if code != 200:
            # Refused (a 429 while the supervisor throttles HTTP) or down: what the last
            # scrape said is no longer known, and must not be compared with the state file.
            with self.feed.lock:
                self.feed.outbox = self.feed.incidents = None
            return
        text = body.decode()
        counts = parse_actions(text)
        waiting, oldest = _OUTBOX.search(text), _OLDEST.search(text)
        with self.feed.lock:
            self.feed.outbox = int(float(waiting.group(1))) if waiting else None
            empty = self.feed.outbox == 0
            age = float(oldest.group(1)) if oldest else 0.0
            self.feed.outbox_since = float("inf") if empty else at - age
            incidents = _INCIDENTS.search(text)
            self.feed.incidents = int(float(incidents.group(1))) if incidents else None
        if life != self._last_life:
            self._last, self._last_life = {}, life
        for key, value in counts.items():
            delta = value - self._last.get(key, 0.0)
            if delta > 0:
                self.feed.add("actions", ActionDelta(self._last_at, at, *key, delta))
        self._last, self._last_at = counts, at


def parse_log_line(line: str, last_at: float) -> tuple[float, str | None]:
    """The line's time (the last one seen, for continuation lines) and its event, if any."""
    at = last_at
    stamp = _STAMP.match(line)
    if stamp:
        at = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S"))
        at += int(stamp.group(2)) / 1000
    for what, pattern in LOG_EVENTS.items():
        if pattern.search(line):
            return at, what
    return at, None


class LogTail(Poller):
    """Follows the supervisor's log (every life appends to the same file)."""

    def __init__(self, feed: Feed, path: Path) -> None:
        super().__init__("log", LOG_INTERVAL_S, feed)
        self.path = path
        self._offset = 0
        self._partial = b""
        self._last_at = time.time()

    def poll(self) -> None:
        """Read what was appended."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            line = raw.decode(errors="replace")
            self._last_at, what = parse_log_line(line, self._last_at)
            if what is not None:
                self.feed.add("log", LogEvent(self._last_at, what, line))
                with self.feed.lock:
                    self.feed.events.append(LogEvent(self._last_at, what, line))


def fd_kinds(pid: int) -> Counter[str]:
    """How many descriptors of each kind `pid` holds (socket, pipe, file, eventpoll...)."""
    kinds: Counter[str] = Counter()
    base = f"/proc/{pid}/fd"
    for fd in os.listdir(base):
        try:
            target = os.readlink(f"{base}/{fd}")
        except OSError:
            continue  # closed meanwhile
        kind = target.split(":", 1)[0] if ":" in target else "file"
        if kind == "anon_inode":
            kind = target.partition("[")[2].rstrip("]") or target.partition(":")[2]
        kinds[kind] += 1
    return kinds


def _threads(pid: int) -> int | None:
    """How many threads `pid` runs (None if it has just exited)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


class ProcSampler(Poller):
    """The supervisor's RSS, descriptors and CPU, what its state file holds, and the host's
    CPU and memory (read by the run itself from /proc), each second."""

    def __init__(
        self,
        feed: Feed,
        life: Callable[[], tuple[int, int] | None],
        state_file: Path,
        quiet: Callable[[], bool],
    ) -> None:
        super().__init__("proc", PROC_INTERVAL_S, feed)
        self.life = life
        self.state_file = state_file
        self.quiet = quiet
        self._reader = ProcReader()
        self._host = HostReader()

    def poll(self) -> None:
        """One sample."""
        self._read_state()
        at, (cpu, memory) = time.time(), self._host.read()
        self.feed.add("host_cpu", (at, cpu))
        self.feed.add("host_memory", (at, memory))
        current = self.life()
        if current is None:
            return
        n, pid = current
        try:
            kinds = fd_kinds(pid)
        except OSError:
            return  # it has just exited
        rss, cpu = self._reader.rss_bytes([pid]), self._reader.cpu_seconds([pid])
        census = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        fds = sum(kinds.values())
        with self.feed.lock:
            waiting, in_file = self.feed.outbox, self.feed.outbox_in_file
        threads = _threads(pid)
        sample = ProcSample(
            time.time(), n, rss, fds, cpu, self.quiet(), census, waiting, in_file, threads
        )
        self.feed.add("proc", sample)

    def _read_state(self) -> None:
        try:
            state = json.loads(self.state_file.read_text())
            waiting: int | None = len(state.get("outbox", {}).get("messages", []))
        except (OSError, ValueError, AttributeError):
            waiting = None
        with self.feed.lock:
            self.feed.outbox_in_file = waiting
