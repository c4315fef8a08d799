"""Active probes: catch what systemd cannot see (hung, stale, overgrown, silent).

Each check answers one question about the world and says why in words. `run` puts every
check under a hard timeout and turns any error into a result (a failure, or unknown where the
fault is ours), so one bad target never stalls the others or the daemon. The runner's
`build` picks the check for a probe: these, or `process`'s (exec) and `host`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp

from supervisor.config import HeartbeatProbe, HttpProbe, ResourcesProbe, TcpProbe
from supervisor.errors import BusError
from supervisor.model import Clock, ProbeResult, Status, UnitResources
from supervisor.probing import conditions
from supervisor.probing.outcome import OUR_ERRNOS, Check, Instant, Outcome, passed, worst

__all__ = ["Check", "Instant", "Outcome"]

MIB = 1024 * 1024
_MAX_BODY = 256 * 1024
FAIL, PASS = Status.FAIL, Status.PASS


ReadUnit = Callable[[], Awaitable[UnitResources]]
# The verifying TLS context for https (runtime/tls.py): never aiohttp's own, which the daemon
# imports without a CA file (runtime/limits.py).
Tls = Callable[[], Awaitable[ssl.SSLContext]]


class ProcessTree(Protocol):
    """Where a unit's processes and their use are read (resources.ProcReader)."""

    def pids(self, control_group: str) -> list[int]:
        """PIDs in the cgroup."""

    def cpu_seconds(self, pids: list[int]) -> float:
        """Their CPU seconds."""

    def rss_bytes(self, pids: list[int]) -> int:
        """Their resident memory."""


class HttpCheck:
    """GET; 2xx and 3xx pass (redirects are not followed), optional JSON conditions."""

    kind = "http"

    def __init__(
        self,
        spec: HttpProbe,
        session: Callable[[], aiohttp.ClientSession],
        clock: Clock | None = None,
        *,
        tls: Tls,
    ) -> None:
        self._spec = spec
        self._session = session
        self._clock = clock
        self._tls = tls

    async def check(self) -> Outcome:
        """Fetch the URL and judge status and body."""
        spec = self._spec
        try:
            # http needs no context: redirects, which could lead to https, are not followed.
            tls = await self._tls() if spec.url.startswith("https:") else True
            async with self._session().get(spec.url, allow_redirects=False, ssl=tls) as resp:
                if not 200 <= resp.status < 400:
                    return Outcome(FAIL, f"http: status {resp.status}", resp.status, "status")
                if spec.expect_json is None and not spec.conditions:
                    return Outcome(PASS, f"http: status {resp.status}", resp.status, "status")
                body = await resp.content.read(_MAX_BODY + 1)
        except aiohttp.ClientSSLError as exc:  # before its base: the errno is OpenSSL's
            return Outcome(FAIL, f"http: TLS: {_tls_why(exc.os_error)}")
        except aiohttp.ClientConnectorError as exc:  # as for tcp: our errnos are unknown
            return Outcome(_blame(exc.os_error), f"http: cannot connect: {_why(exc.os_error)}")
        except aiohttp.ClientError as exc:
            return Outcome(FAIL, f"http: {type(exc).__name__}: {exc}")
        if len(body) > _MAX_BODY:
            return Outcome(FAIL, f"http: body over {_MAX_BODY // 1024} KiB, not read")
        return self._judge_body(body)

    def _judge_body(self, body: bytes) -> Outcome:
        try:
            doc = json.loads(body)
        except ValueError:
            return Outcome(FAIL, "http: body is not JSON")
        for key, want in (self._spec.expect_json or {}).items():
            got = doc.get(key) if isinstance(doc, dict) else None
            if got != want:
                return Outcome(FAIL, f"http: body field {key!r} is {got!r}, expected {want!r}")
        conds = self._spec.conditions
        if not conds:
            return Outcome(PASS, "http: status ok, body as expected")
        now = self._clock.time() if self._clock else 0.0
        found = conditions.evaluate(doc, conds, now)
        if not found:
            return Outcome(PASS, f"http: status ok, body as expected ({len(conds)} conditions)")
        words = "; ".join(f.words for f in found)
        return Outcome(worst([f.status for f in found]), f"http: {words}")


class TcpCheck:
    """A TCP connect succeeds."""

    kind = "tcp"

    def __init__(self, spec: TcpProbe) -> None:
        self._spec = spec

    async def check(self) -> Outcome:
        """Connect and close at once."""
        where = f"{self._spec.host}:{self._spec.port}"
        try:
            _reader, writer = await asyncio.open_connection(self._spec.host, self._spec.port)
        except OSError as exc:  # out of descriptors is ours (unknown); refused is the target's
            return Outcome(_blame(exc), f"tcp: {where}: {_why(exc)}")
        writer.close()
        # A reset on close is fine: the connect itself succeeded, which is the question.
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return Outcome(PASS, f"tcp: {where} accepts connections")


class HeartbeatCheck:
    """A file's mtime is fresh (a local file: stat does not block for long)."""

    kind = "heartbeat"

    def __init__(self, spec: HeartbeatProbe, clock: Clock) -> None:
        self._spec = spec
        self._clock = clock

    async def check(self) -> Outcome:
        """Compare the file's age with max_age_s."""
        return self.read()

    def read(self) -> Outcome:
        """The same, in place: a stat of a local file."""
        try:
            mtime = os.stat(self._spec.path).st_mtime
        except FileNotFoundError:
            return Outcome(FAIL, f"heartbeat: {self._spec.path} does not exist")
        except OSError as exc:
            return Outcome(FAIL, f"heartbeat: cannot stat {self._spec.path}: {exc.strerror}")
        age = max(0.0, self._clock.time() - mtime)
        limit = self._spec.max_age_s
        words = f"heartbeat: {age:.0f} s old (max {limit:g} s)"
        return Outcome(passed(age <= limit), words, round(age, 3), "s")


class ResourcesCheck:
    """Memory and CPU of the unit: systemd's cgroup figures, else /proc for its processes."""

    kind = "resources"

    def __init__(
        self, spec: ResourcesProbe, read_unit: ReadUnit, reader: ProcessTree, clock: Clock
    ) -> None:
        self._spec = spec
        self._read_unit = read_unit
        self._reader = reader
        self._clock = clock
        self._last_cpu: tuple[float, float] | None = None  # (cpu seconds, monotonic)

    async def check(self) -> Outcome:
        """Sample memory and CPU, compare with the limits."""
        unit = await self._read_unit()
        pids: list[int] | None = None
        if unit.memory_bytes is not None:
            memory, mem_source = unit.memory_bytes, "cgroup"
        else:
            pids = self._reader.pids(unit.control_group)
            memory, mem_source = self._reader.rss_bytes(pids), "proc"
        if unit.cpu_nsec is not None:
            cpu_s, cpu_source = unit.cpu_nsec / 1e9, "cgroup"
        else:
            pids = pids if pids is not None else self._reader.pids(unit.control_group)
            cpu_s, cpu_source = self._reader.cpu_seconds(pids), "proc"
        return self._judge(
            memory, self._cpu_percent(cpu_s), f"memory {mem_source}, cpu {cpu_source}"
        )

    def _cpu_percent(self, cpu_s: float) -> float | None:
        now = self._clock.monotonic()
        last, self._last_cpu = self._last_cpu, (cpu_s, now)
        if last is None or now <= last[1]:
            return None  # a rate needs two samples
        # Processes that exited take their CPU time with them (/proc): never report < 0.
        return max(0.0, 100.0 * (cpu_s - last[0]) / (now - last[1]))

    def _judge(self, memory: int, cpu: float | None, source: str) -> Outcome:
        mb = memory / MIB
        samples: list[tuple[str, float]] = [("memory_bytes", float(memory))]
        if cpu is not None:
            samples.append(("cpu_percent", cpu))
        limit_mb, limit_cpu = self._spec.memory_max_mb, self._spec.cpu_max_percent
        if limit_mb is not None and mb > limit_mb:
            return Outcome(
                FAIL,
                f"resources: {mb:.0f} MB > {limit_mb:g} MB",
                round(mb, 1),
                "MB",
                source,
                tuple(samples),
            )
        if limit_cpu is not None and cpu is not None and cpu > limit_cpu:
            return Outcome(
                FAIL,
                f"resources: CPU {cpu:.0f} % > {limit_cpu:g} %",
                round(cpu, 1),
                "percent",
                source,
                tuple(samples),
            )
        cpu_words = f", CPU {cpu:.1f} %" if cpu is not None else ""
        return Outcome(
            PASS, f"resources: {mb:.0f} MB{cpu_words}", round(mb, 1), "MB", source, tuple(samples)
        )


def _tls_why(exc: OSError) -> str:
    """OpenSSL's words ("certificate verify failed: unable to get local issuer certificate"),
    never the errno's: OpenSSL's 1 would read "Operation not permitted"."""
    verify = getattr(exc, "verify_message", None)
    return f"certificate verify failed: {verify}" if verify else str(exc.strerror or exc)


def _why(exc: OSError) -> str:
    """The errno's words ("Connection refused"), not asyncio's "Connect call failed (...)"."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


async def run(target: str, probe: str, check: Check, timeout_s: float, clock: Clock) -> ProbeResult:
    """Run a check under a hard timeout; every failure becomes a result, never an exception."""
    started = clock.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            outcome = await check.check()
    except TimeoutError:
        outcome = Outcome(FAIL, f"{check.kind}: timeout after {timeout_s:.1f} s")
    except Exception as exc:  # a probe must never take the daemon down
        outcome = _crashed(check.kind, exc)
    return _result(target, probe, check.kind, outcome, clock.monotonic() - started)


def run_now(target: str, probe: str, check: Instant, clock: Clock) -> ProbeResult:
    """Ask an instant check in place: the result `run` would give, without a task or a
    timeout (nothing in it waits, so no timeout could ever fire)."""
    started = clock.monotonic()
    try:
        outcome = check.read()
    except Exception as exc:  # a probe must never take the daemon down
        outcome = _crashed(check.kind, exc)
    return _result(target, probe, check.kind, outcome, clock.monotonic() - started)


def _crashed(kind: str, exc: Exception) -> Outcome:
    return Outcome(_blame(exc), f"{kind}: {type(exc).__name__}: {exc}")


def _result(target: str, probe: str, kind: str, outcome: Outcome, took: float) -> ProbeResult:
    return ProbeResult(
        target=target,
        probe=probe,
        kind=kind,
        status=outcome.status,
        output=outcome.output,
        duration_s=took,
        observed_value=outcome.value,
        observed_unit=outcome.unit,
        source=outcome.source,
        samples=outcome.samples,
        perfdata=outcome.perfdata,
    )


def _blame(exc: Exception) -> Status:
    """Unknown when the fault is ours (bus lost, out of descriptors or memory), else fail."""
    if isinstance(exc, BusError):
        return Status.UNKNOWN
    if isinstance(exc, OSError) and exc.errno in OUR_ERRNOS:
        return Status.UNKNOWN
    return FAIL


def session_factory(limit: int = 32) -> Callable[[], aiohttp.ClientSession]:
    """A lazily created shared client session (it must be made inside the running loop)."""
    holder: list[aiohttp.ClientSession] = []

    def get() -> aiohttp.ClientSession:
        if not holder or holder[0].closed:
            connector = aiohttp.TCPConnector(limit=limit, force_close=True)
            holder[:] = [aiohttp.ClientSession(connector=connector)]
        return holder[0]

    return get
