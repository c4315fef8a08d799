"""Where does the supervisor's memory go under repeated faults? Measured, in one process.

    python -m devtools.leakcheck --cycles 300

Runs the whole daemon (`supervisor.app.daemon.Daemon`) in this event loop against the fake
systemd (`tests.fakes`) on a private dbus-daemon, with Telegram on (the fake Bot API, two
chats) and history on, configured like the soak (`devtools.chaos`): the trader and the
position monitor with a heartbeat and a resources probe, the dashboard with an HTTP probe.
Each cycle kills trader and position-monitor (failed, Result=signal, as kill -9 leaves a
unit) and hangs the dashboard's HTTP endpoint, then waits until the daemon restarted all
three, every target passes again and no incident is open.

It also reads /health ten times a second and /metrics once a second, as the soak's
observer does. After a warm-up (the bounded rings, the 500 recent events, the job book
reach their size) it counts live objects by type and, unless `--no-trace`, takes a
`tracemalloc` snapshot (tracing from the start: replaced entries of a bounded structure are
not growth); after the cycles it prints RSS, the bytes Python's allocator holds in its arenas
and its allocated blocks, growth per cycle, the largest growths by allocation site (only
allocations made with a frame of `supervisor/` on the stack, and apart, everything but the
fakes' and this tool's), the object types whose count grew, and what RSS is left after the
daemon's own `shed_memory()` (gc and malloc_trim): memory given back then was the
allocator's free memory, not live data. The fakes' logs are emptied after each cycle so
that they do not count. `--no-trace` is about three times faster (tracing costs CPU and
memory: RSS figures of a traced run are not the daemon's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import logging
import os
import resource
import sys
import tempfile
import time
import tomllib
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from devtools.fakes.telegram_api import FakeBotApi
from supervisor.app.daemon import Daemon
from supervisor.config import Config, parse
from supervisor.guard.load import shed_memory
from supervisor.model import Status
from tests.fakes.dbus_daemon import BusDaemon
from tests.fakes.systemd_bus import FakeSystemd
from tests.inside import Inside

CHATS = (1111, 2222)
KILLED = ("trader", "position-monitor")
FLEET = (*KILLED, "dashboard")
_FRAMES = 16
_OURS = tracemalloc.Filter(True, "*/supervisor/*", all_frames=True)
_RECOVERY = (
    '  [targets.recovery]\n  actions = ["restart"]\n  max_attempts = 1000\n'
    "  window_s = 1\n  backoff_s = [0]\n"
)


def _config(state: Path, bot: FakeBotApi, dashboard_port: int) -> Config:
    """The soak's configuration, with short periods so a cycle takes a few seconds (and a
    flapping incident is over after 1 s without failure, so that every cycle opens and
    closes incidents)."""
    timing = "period_s = 0.5\ntimeout_s = 0.3\nconfirm_interval_s = 0.1\nstartup_grace_s = 0\n"
    text = (
        f'state_dir = "{state}"\n[breaker]\nenabled = false\n'
        '[http]\nhost = "127.0.0.1"\nport = 0\n'
        "[alerts]\nmax_per_hour = 1000\ncooldown_s = 3600.0\nflap_quiet_s = 1.0\n"
        f'[alerts.telegram]\ntoken = "{bot.token}"\nchat_ids = {list(CHATS)}\n'
        f'api_url = "{bot.url}"\ntimeout_s = 5\n'
    )
    for name in KILLED:
        text += (
            f'[[targets]]\nname = "{name}"\nunit = "{name}.service"\n{timing}'
            f'  [[targets.probes]]\n  type = "heartbeat"\n  path = "{state}/{name}.heartbeat"\n'
            "  max_age_s = 3.0\n"
            '  [[targets.probes]]\n  type = "resources"\n  memory_max_mb = 88\n'
            f"{_RECOVERY}"
        )
    text += (
        f'[[targets]]\nname = "dashboard"\nunit = "dashboard.service"\n{timing}'
        f'  [[targets.probes]]\n  type = "http"\n  url = "http://127.0.0.1:{dashboard_port}/health"\n'
        f"{_RECOVERY}"
    )
    return parse(tomllib.loads(text), env={})


class Dashboard:
    """An HTTP /health that answers at once, or hangs until released (a stopped dashboard)."""

    def __init__(self) -> None:
        self.hung = False
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _health(self, _request: web.Request) -> web.Response:
        if self.hung:
            await self._release.wait()
        return web.Response(text="ok")

    def hang(self) -> None:
        self.hung = True
        self._release = asyncio.Event()

    def release(self) -> None:
        self.hung = False
        self._release.set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()


async def _until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


@dataclass
class Rig:
    """The daemon and what it runs against."""

    daemon: Daemon
    systemd: FakeSystemd
    bot: FakeBotApi
    dashboard: Dashboard
    state: Path

    @property
    def inside(self) -> Inside:
        return Inside(self.daemon)

    def restarts(self, unit: str) -> int:
        return sum(1 for c in self.systemd.calls_to("RestartUnit") if c.args[0] == unit)

    def settled(self) -> bool:
        snap = self.daemon.snapshot()
        return not self.inside.incidents and all(
            (t := snap.target(n)) is not None and t.status is Status.PASS for n in FLEET
        )

    def beat(self) -> None:
        for name in KILLED:
            (self.state / f"{name}.heartbeat").touch()

    def forget(self) -> None:
        """Empty the fakes' own logs so that they do not count as the daemon's growth."""
        self.systemd.calls.clear()
        self.systemd.jobs.clear()
        bot = self.bot
        for log in (bot.requests, bot.sent, bot.sent_at, bot.edited, bot.callback_answers):
            log.clear()
        bot._messages.clear()  # what editMessageText could edit: the fake's, not ours


@contextlib.asynccontextmanager
async def rig() -> AsyncIterator[Rig]:
    with tempfile.TemporaryDirectory(prefix="leakcheck-") as tmp, BusDaemon() as bus:
        systemd = FakeSystemd(bus.address)
        for name in FLEET:
            systemd.add_unit(f"{name}.service")
        await systemd.start()
        dashboard = Dashboard()
        await dashboard.start()
        async with FakeBotApi() as bot:
            cfg = _config(Path(tmp), bot, dashboard.port)
            daemon = Daemon(cfg, env={"DBUS_SESSION_BUS_ADDRESS": bus.address})
            stop, reload = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(daemon.run(stop, reload))
            the_rig = Rig(daemon, systemd, bot, dashboard, Path(tmp))
            beating = asyncio.create_task(_beat(the_rig))
            try:
                await _until(the_rig.settled, 30, "every target passes at start")
                yield the_rig
            finally:
                beating.cancel()
                stop.set()
                await asyncio.wait_for(task, 10)
                await dashboard.stop()
                await systemd.close()


async def _beat(the_rig: Rig) -> None:
    """The fleet's heartbeats, and the soak observer's reads: /health 10 times a second,
    /metrics once a second."""
    async with aiohttp.ClientSession() as session:
        for n in itertools.count():
            the_rig.beat()
            base = f"http://127.0.0.1:{the_rig.inside.port}"
            for path in ("/health", "/metrics") if n % 10 == 0 else ("/health",):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(base + path) as resp:
                        await resp.read()
            await asyncio.sleep(0.1)


async def cycle(the_rig: Rig) -> None:
    """One round of the soak's faults: two kills and a hang, until all is well again."""
    systemd = the_rig.systemd
    before = {n: the_rig.restarts(f"{n}.service") for n in FLEET}
    for name in KILLED:
        systemd.set_unit(
            f"{name}.service", ActiveState="failed", SubState="failed", Result="signal", MainPID=0
        )
    the_rig.dashboard.hang()
    await _until(
        lambda: the_rig.restarts("dashboard.service") > before["dashboard"], 30, "dashboard restart"
    )
    the_rig.dashboard.release()
    await _until(
        lambda: all(the_rig.restarts(f"{n}.service") > before[n] for n in FLEET), 30, "restarts"
    )
    await _until(the_rig.settled, 30, "every target passes, no incident open")
    the_rig.forget()


def _snapshot() -> tracemalloc.Snapshot | None:
    return tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None


def _types() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def _arena_bytes() -> int:
    """Bytes Python's small-object allocator holds in arenas now (from _debugmallocstats)."""
    with tempfile.TemporaryFile("w+") as out:
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        for line in out:
            if line.startswith("Total"):
                return int(line.split("=")[1].replace(",", ""))
    return 0


def _figures() -> str:
    return (
        f"RSS {_rss_kib() / 1024:.1f} MiB, Python's arenas {_arena_bytes() / 2**20:.1f} MiB, "
        f"{sys.getallocatedblocks():,} blocks"
    )


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


_NOT_THE_RIG = [
    tracemalloc.Filter(False, "*/devtools/*", all_frames=True),
    tracemalloc.Filter(False, "*/tests/*", all_frames=True),
]


def _size(snap: tracemalloc.Snapshot) -> int:
    return sum(s.size for s in snap.statistics("filename"))


def _report(cycles: int, first: tracemalloc.Snapshot, last: tracemalloc.Snapshot, top: int) -> None:
    """Print the growth of what is still allocated, per cycle and by allocation site."""
    rest = _size(last.filter_traces(_NOT_THE_RIG)) - _size(first.filter_traces(_NOT_THE_RIG))
    first, last = first.filter_traces([_OURS]), last.filter_traces([_OURS])
    ours = _size(last) - _size(first)
    print(f"traced, made with a supervisor/ frame on the stack: {ours / cycles:+,.0f} B/cycle")
    print(f"traced, all but the fakes' and this tool's: {rest / cycles:+,.0f} B/cycle")
    print(f"largest growths by allocation site (innermost supervisor/ frame), top {top}:")
    for stat in last.compare_to(first, "traceback")[:top]:
        if stat.size_diff <= 0:
            break
        ours_frames = [f for f in stat.traceback if "/supervisor/" in f.filename]
        where = ours_frames[-1] if ours_frames else stat.traceback[-1]
        alloc = stat.traceback[-1]
        print(
            f"  {stat.size_diff:+9,} B {stat.count_diff:+6} blocks  "
            f"{where.filename.rsplit('/supervisor/', 1)[-1]}:{where.lineno}"
            f"  (allocated in {alloc.filename.rsplit('/', 1)[-1]}:{alloc.lineno})"
        )


async def main(cycles: int, warmup: int, top: int, trace: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="leakcheck-log-") as logs:
        # The daemon logs as under systemd (INFO), to a file: the formatting is part of a life.
        handler = logging.FileHandler(Path(logs) / "supervisor.log")
        logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
        return await _measure(cycles, warmup, top, trace)


async def _measure(cycles: int, warmup: int, top: int, trace: bool) -> int:
    if trace:
        # From the start: a bounded structure whose old entries were made before tracing
        # began would show its whole size as growth once they are all replaced.
        tracemalloc.start(_FRAMES)
    async with rig() as the_rig:
        for _ in range(warmup):
            await cycle(the_rig)
        gc.collect()
        print(f"after the warm-up: {_figures()}", flush=True)
        rss0, types0, snap0 = _rss_kib(), _types(), _snapshot()
        started = time.monotonic()
        for i in range(cycles):
            await cycle(the_rig)
            if (i + 1) % 50 == 0:
                print(f"cycle {i + 1}: {_figures()}", flush=True)
        elapsed = time.monotonic() - started
        gc.collect()
        rss1, types1, snap1 = _rss_kib(), _types(), _snapshot()
        passes = the_rig.inside.passes
        print(f"after {cycles} cycles: {_figures()}")
        print(f"the daemon gave freed memory back {the_rig.inside.trims} times under budget")
        # What the daemon does itself over its memory budget: free memory goes back to the
        # OS. What RSS gives back here was the allocator's free memory, not live objects.
        shed_memory()
        print(f"after shed_memory() (gc, malloc_trim): {_figures()}")
    print(f"{cycles} cycles in {elapsed:.0f} s ({passes} supervision passes in all)")
    per_cycle = (rss1 - rss0) * 1024 / cycles
    print(f"RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB ({per_cycle:+,.0f} B/cycle)")
    if snap0 is not None and snap1 is not None:
        _report(cycles, snap0, snap1, top)
    grown = [(t, types1[t] - types0.get(t, 0)) for t in types1]
    grown = sorted((g for g in grown if g[1] > 0), key=lambda g: -g[1])[:top]
    print("live objects whose count grew: " + ", ".join(f"{t} {d:+}" for t, d in grown))
    return 0


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.leakcheck", description=__doc__)
    parser.add_argument("--cycles", type=int, default=200, help="fault cycles measured")
    parser.add_argument("--warmup", type=int, default=20, help="cycles before the first snapshot")
    parser.add_argument(
        "--no-trace", action="store_true", help="RSS and object counts only (no tracemalloc)"
    )
    parser.add_argument("--top", type=int, default=15, help="growths listed")
    args = parser.parse_args(argv)
    return asyncio.run(main(args.cycles, args.warmup, args.top, not args.no_trace))


if __name__ == "__main__":
    sys.exit(run())
