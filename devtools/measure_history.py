"""A quick measure of the history's costs (the full benchmark lives elsewhere):

- `/` and `/events?limit=100` latency at 10 clients with N events stored (wrk, if installed);
- how long a burst of events holds up the event loop (the supervision loop's ping);
- what the store costs in resident memory.

    python -m devtools.measure_history [--events 100000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from supervisor.api.history import HistoryRoutes
from supervisor.api.page import StatusPage
from supervisor.api.server import HealthApp, Routes
from supervisor.api.stream import EventStream
from supervisor.api.transport import HttpServer, HttpSettings
from supervisor.history.events import EventClock, Kind, note
from supervisor.history.recorder import Recorder
from supervisor.history.store import HistoryStore
from supervisor.model import SystemClock
from supervisor.watch.health import HealthModel, TargetSpec

TARGETS = ["trader", "dashboard", "position-monitor"]


def rss_kb() -> int:
    """Our resident set, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def fill(store: HistoryStore, count: int) -> None:
    """`count` events spread over the last 30 days, as a busy month would leave them."""
    start = time.time() - 30 * 86400

    class Clock(SystemClock):
        now = start

        def time(self) -> float:
            return self.now

    clock = Clock()
    ids = EventClock(clock)
    step = 30 * 86400 / count
    for i in range(count):
        clock.now = start + i * step
        store.add(note(ids, Kind.RECOVERY, f"restart trader (attempt {i % 3 + 1}/3)", "trader"))
        if i % 5000 == 4999:  # let the writer keep up: the queue is bounded
            await written(store, i - 2000)
    await written(store, count)


async def written(store: HistoryStore, count: int) -> None:
    """Until the writer thread has written `count` events (it is a thread: poll it)."""
    while True:
        if store.written >= count:
            return
        await asyncio.sleep(0.01)


async def burst_lag(recorder: Recorder, events: int) -> float:
    """The longest the loop was held while `events` were recorded at once (seconds)."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - before - 0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    for i in range(events):
        recorder.record(Kind.ALERT, f"burst {i}", "trader")
    await asyncio.sleep(0.2)
    stop.set()
    await task
    return max(lags)


def wrk(url: str, seconds: float) -> str:
    """p50 and p99 from wrk's latency distribution, with 10 connections."""
    if shutil.which("wrk") is None:
        return "wrk not installed"
    out = subprocess.run(
        ["wrk", "-t2", "-c10", f"-d{seconds:.0f}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    rps = re.search(r"Requests/sec:\s+(\S+)", out)
    return f"p50 {p50 and p50[1]}, p99 {p99 and p99[1]}, {rps and rps[1]} req/s"


async def main(count: int, seconds: float) -> None:
    """Measure and print."""
    folder = Path(tempfile.mkdtemp(prefix="history-measure-"))
    clock = SystemClock()
    model = HealthModel([TargetSpec(n, f"{n}.service") for n in TARGETS], clock)
    before = rss_kb()
    store = HistoryStore(folder / "history.sqlite3")
    recorder = Recorder(store, clock, lambda: TARGETS)
    recorder.start()
    started = time.perf_counter()
    await fill(store, count)
    size = (folder / "history.sqlite3").stat().st_size / 2**20
    print(f"{count} events written in {time.perf_counter() - started:.1f} s ({size:.1f} MB)")
    stream = EventStream()
    recorder.subscribe(lambda e: stream.publish(e.id, e.document()))
    routes: list[Routes] = [HistoryRoutes(recorder, dict), stream, StatusPage()]
    app = HealthApp(model.snapshot, lambda: b"", routes=routes).build()
    server = HttpServer(app, HttpSettings(port=0))
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    paths = ("/", "/events?limit=100", "/events?limit=100&since=30d", "/history")
    for path in paths:
        print(f"GET {path}: {await asyncio.to_thread(wrk, base + path, seconds)}")
    print(f"loop held by a burst of 1,000 events: {1000 * await burst_lag(recorder, 1000):.2f} ms")
    print(f"RSS with 100,000 events written and read: +{(rss_kb() - before) / 1024:.1f} MB")
    await server.stop()
    store.close(time.time())
    shutil.rmtree(folder)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.seconds))
    sys.exit(0)
