"""The history's costs: what it adds to the supervisor's RSS (on vs off, side by side), `/`
and /events latency at 10 clients with 100,000 events stored, and whether a burst of 1,000
events delays a watchdog ping. (Idle CPU with the history on is the `idle` section's.)"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from devtools.bench.load import wrk_level
from devtools.bench.processes import rss_mb
from devtools.bench.settings import (
    BURST_EVENTS,
    SETTLE_TIMEOUT_S,
    WATCHDOG_SLACK_S,
    WATCHDOG_USEC,
    BenchError,
    Settings,
    say,
)
from devtools.bench.stats import rss_growth, summary, watchdog_verdict
from devtools.bench.watchers import NotifyListener, Supervisor, fleet_config, supervisor
from devtools.sandbox import Sandbox, wait_for
from supervisor.api.stream import EventStream
from supervisor.history.events import EventClock, Kind, note
from supervisor.history.recorder import Recorder
from supervisor.history.store import FILE_NAME, HistoryStore
from supervisor.model import SystemClock
from supervisor.runtime.notify import Notifier

TARGETS = ("trader", "dashboard", "position-monitor")
KINDS = (Kind.RECOVERY, Kind.ALERT, Kind.STATUS, Kind.UNIT)
CLIENTS = 10
SPREAD_S = 29 * 86_400  # inside the 30-day retention: the supervisor prunes none of them
LEAD_S = 0.001  # a burst starts this long before a ping is due: the ping waits for it
# Every request a new query string (`before` in the year 2100, counting down, apart per wrk
# thread `id`, which load.COUNTING_LUA sets; "%.0f" as Lua's numbers are doubles): no cached
# page, each reads SQLite's newest 100.
UNCACHED_LUA = """counter = 0
request = function()
  counter = counter + 1
  local before = string.format("%.0f", 4102444800000000 - counter * 16 - id)
  return wrk.format("GET", "/events?limit=100&before=" .. before)
end
"""


def bench_history(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    """RSS on vs off, page and /events latency over a full store, watchdog under bursts."""
    say(f"  RSS with the history on and off, {s.rss_pairs} pairs")
    rss = bench_rss(box, work, s)
    say(f"  GET / and /events at {CLIENTS} clients with {s.history_events:,} events stored")
    latency = bench_latency(box, work, s)
    say(f"  watchdog pings during {s.bursts} bursts of {BURST_EVENTS:,} events")
    burst = bench_bursts(work, s)
    return {"rss": rss, "latency": latency, "burst": burst}


def bench_rss(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    """Pairs of supervisors, history on and off, started together; each one's RSS once both
    have answered `/` and /events and settled."""
    on: list[float] = []
    off: list[float] = []
    for _ in range(s.rss_pairs):
        with (
            supervisor(box, work, "rss-on", partial(fleet_config, box, recovery=True)) as yes,
            supervisor(
                box, work, "rss-off", partial(fleet_config, box, recovery=True, history=False)
            ) as no,
        ):
            for sup in (yes, no):
                sup.wait_pass()
                for path in ("/", "/events?limit=100", "/history"):
                    sup.client.get(path)
            time.sleep(s.idle_settle_s)  # as in `idle`: start-up garbage is not steady cost
            on.append(rss_mb(yes.pid))
            off.append(rss_mb(no.pid))
    return rss_growth(on, off)


def fill(path: Path, count: int) -> float:
    """`count` events spread over the last 29 days, as a busy month leaves them, written by
    the supervisor's own store; returns the file's size in MB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    store = HistoryStore(path)
    store.start()
    clock = _SetClock()
    ids = EventClock(clock)
    start, step = time.time() - SPREAD_S, SPREAD_S / count
    for i in range(count):
        clock.now = start + i * step
        target = TARGETS[i % len(TARGETS)]
        summary_text = f"restart {target} (attempt {i % 3 + 1}/3)"
        store.add(note(ids, KINDS[i % len(KINDS)], summary_text, target))
        if i % 5000 == 4999:  # the writer's queue is bounded: let it keep up
            _written(store, i - 2000)
    _written(store, count)
    store.close(time.time())
    return path.stat().st_size / 2**20


class _SetClock(SystemClock):
    """Wall-clock time set by hand, for ids spread over the past."""

    now = 0.0

    def time(self) -> float:
        return self.now


def _written(store: HistoryStore, count: int) -> None:
    if store.dropped:
        raise BenchError(f"the history store dropped {store.dropped} events while filling")
    wait_for(
        lambda: store.written >= count, SETTLE_TIMEOUT_S, f"{count} events written", interval=0.01
    )


def bench_latency(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    """wrk at 10 connections on `/`, /events?limit=100 (cached between changes, as served)
    and /events uncached, against a supervisor whose store holds `s.history_events` events."""
    sizes: list[float] = []

    def build(port: int, state: Path) -> str:
        sizes.append(fill(state / FILE_NAME, s.history_events))
        return fleet_config(box, port, state, recovery=True)

    runs = (("/", ""), ("/events?limit=100", ""), ("/events?limit=100 (uncached)", UNCACHED_LUA))
    levels = []
    # One supervisor per level: every client on 127.0.0.1 shares one CPU share of the
    # supervisor's throttle, and a flood leaves that share in debt for a long while, so a level
    # run after another would measure nothing but 429s.
    for name, lua in runs:
        with supervisor(box, work, "history-load", build, watchdog_usec=WATCHDOG_USEC) as sup:
            sup.wait_pass()
            _wait_for_store(sup)
            level = wrk_level(sup, CLIENTS, s.wrk_s, name.split(" ")[0], lua)
        level["path"] = name
        levels.append(level)
        say(f"    {name}: p99 {level['p99_ms']:.2f} ms, {level['rps']:.0f} req/s")
    return {"events": s.history_events, "file_mb": round(sizes[0], 1), "levels": levels}


def _wait_for_store(sup: Supervisor) -> None:
    """Until /events reads the filled store (it opens in its own thread, soon after start)."""
    seen: list[dict[str, Any]] = []

    def from_store() -> bool:
        seen[:] = [json.loads(sup.client.served("/events?limit=100"))]
        return seen[0].get("source") == "store" and len(seen[0]["events"]) == 100

    try:
        wait_for(from_store, SETTLE_TIMEOUT_S, "/events to read the filled store")
    except TimeoutError as exc:
        raise BenchError(f"{exc}; last page: {str(seen)[:300]}") from None


def bench_bursts(work: Path, s: Settings) -> dict[str, Any]:
    """The recorder, its store and the event stream on an event loop that pings a real
    NOTIFY_SOCKET the way the supervision loop does; bursts recorded just before a ping."""
    folder = work / "burst"
    folder.mkdir()
    listener = NotifyListener(folder / "notify")
    listener.start()
    try:
        return asyncio.run(_bursts(folder, listener, s))
    finally:
        listener.stop()


async def _bursts(folder: Path, listener: NotifyListener, s: Settings) -> dict[str, Any]:
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    notifier = Notifier(env)
    interval = notifier.watchdog_interval_s
    assert interval is not None
    store = HistoryStore(folder / FILE_NAME)
    recorder = Recorder(store, SystemClock(), list(TARGETS))
    recorder.start()
    stream = EventStream()
    recorder.subscribe(lambda e: stream.publish(e.id, e.document()))
    pinger = asyncio.create_task(_ping(notifier, interval))
    holds, gaps = [], []
    try:
        for b in range(s.bursts):
            held_ms, verdict = await _burst(b, recorder, store, listener, interval)
            holds.append(held_ms)
            gaps.append(verdict)
    finally:
        pinger.cancel()
        stream.close()
        recorder.close()
        notifier.close()
    return {
        "events": BURST_EVENTS,
        "watchdog_usec": WATCHDOG_USEC,
        "ping_interval_s": interval,
        "limit_s": interval + WATCHDOG_SLACK_S,
        "max_gap_s": summary([v["max_gap_s"] for v in gaps]),
        "late": sum(not v["on_time"] for v in gaps),
        "loop_held_ms": summary(holds),
        "dropped": store.dropped,
    }


async def _burst(
    b: int, recorder: Recorder, store: HistoryStore, listener: NotifyListener, interval: float
) -> tuple[float, dict[str, Any]]:
    """One burst, started LEAD_S before a ping is due: how long the loop was held (ms), and
    the longest ping gap from its start until a ping after the store wrote it."""
    seen = len(listener.watchdog)
    await _until(lambda: len(listener.watchdog) > seen, 3 * interval, "a watchdog ping")
    due = listener.watchdog[-1] + interval
    await asyncio.sleep(max(0.0, due - LEAD_S - time.monotonic()))
    start = time.monotonic()
    for i in range(BURST_EVENTS):
        recorder.record(Kind.ALERT, f"burst {b} event {i}", TARGETS[i % len(TARGETS)])
    held_ms = 1000 * (time.monotonic() - start)
    total = (b + 1) * BURST_EVENTS
    await _until(lambda: store.written >= total, SETTLE_TIMEOUT_S, "the burst written")
    await asyncio.sleep(interval + 0.1)  # the pings after the write count too
    end = time.monotonic()
    return held_ms, watchdog_verdict(listener.watchdog, start, end, interval, WATCHDOG_SLACK_S)


async def _ping(notifier: Notifier, interval: float) -> None:
    """WATCHDOG=1 every `interval`, as Supervision.run pings when nothing wakes it."""
    while True:
        await asyncio.sleep(interval)
        notifier.watchdog()


async def _until(done: Callable[[], bool], limit_s: float, what: str) -> None:
    """Until `done()` (the writer and the listener are threads: poll them), or BenchError."""
    deadline = time.monotonic() + limit_s
    while not done():
        if time.monotonic() > deadline:
            raise BenchError(f"no {what} within {limit_s:g} s")
        await asyncio.sleep(0.005)
