"""Our own footprint and the host's load, sampled off the request path (psutil reads /proc)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from supervisor.model import Clock, SelfStats


class SelfSampler:
    """Samples our own CPU and RSS; the daemon calls `sample()` from its load loop."""

    def __init__(self, clock: Clock, pid: int | None = None) -> None:
        self._clock = clock
        self._pid = pid
        self._process: psutil.Process | None = None  # opened by start(): no I/O here
        self._started = clock.monotonic()
        self._last_cpu = 0.0
        self._last_at = self._started
        self.latest = SelfStats()

    def start(self) -> None:
        """Open our process and take the CPU reading later samples are measured from."""
        self._process = psutil.Process(self._pid)
        self._last_cpu = self._cpu()
        self._last_at = self._clock.monotonic()

    def _cpu(self) -> float:
        assert self._process is not None
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def sample(self) -> SelfStats:
        """Take a new sample and keep it as `latest`."""
        if self._process is None:
            self.start()
        assert self._process is not None
        now = self._clock.monotonic()
        cpu = self._cpu()
        elapsed = now - self._last_at
        percent = 100.0 * (cpu - self._last_cpu) / elapsed if elapsed > 0 else 0.0
        self._last_cpu, self._last_at = cpu, now
        self.latest = SelfStats(
            uptime_s=now - self._started,
            rss_bytes=int(self._process.memory_info().rss),
            cpu_seconds=cpu,
            cpu_percent=percent,
        )
        return self.latest


@dataclass(frozen=True, slots=True)
class HostLoad:
    """System-wide CPU (since the previous call) and memory in use, in percent."""

    cpu_percent: float
    memory_percent: float


def host_load() -> HostLoad:
    """CPU busy since the last call (the first call primes it) and memory in use."""
    return HostLoad(
        float(psutil.cpu_percent(interval=None)), float(psutil.virtual_memory().percent)
    )


def shed_memory(*, collect: bool = True) -> None:
    """Give back what we can: collect garbage, then return freed heap pages to the OS.

    `collect=False` only trims: a full collection holds the loop for as long as it walks
    every object, which the trim under budget (`guard.trim`) must not do.
    """
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, looked up once in what is already loaded; None elsewhere.

    Not `ctypes.util.find_library`: on Linux it runs `ldconfig -p` in a child process,
    a fork of the daemon and a pipe on each call.
    """
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None).malloc_trim
    return None  # not glibc (musl has no malloc_trim): the collection alone will do
