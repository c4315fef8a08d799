"""GET /health under load (wrk at 1, 10 and 100 connections) with the watchdog on: requests/s,
latency, the longest gap between WATCHDOG=1 pings, and whether probes kept their schedule."""

from __future__ import annotations

import subprocess
import time
from functools import partial
from pathlib import Path
from typing import Any

from devtools.bench.processes import spawn, stop_process
from devtools.bench.settings import (
    FLEET_PROBES,
    PERIOD_S,
    SETTLE_TIMEOUT_S,
    WATCHDOG_SLACK_S,
    WATCHDOG_USEC,
    BenchError,
    Settings,
    say,
)
from devtools.bench.stats import max_gap, parse_wrk
from devtools.bench.watchers import Supervisor, fleet_config, supervisor
from devtools.sandbox import Sandbox, wait_for

CONNECTIONS = (1, 10, 100)


def bench_load(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    """wrk against /health at each level, with the watchdog on; probe runs over the phase."""
    build = partial(fleet_config, box, recovery=True)
    levels = []
    with supervisor(box, work, "load", build, watchdog_usec=WATCHDOG_USEC) as sup:
        sup.wait_pass()
        # Every probe has run once (first runs are spread over a period): counts are comparable.
        wait_for(
            lambda: len(sup.probe_runs()) == FLEET_PROBES,
            PERIOD_S + SETTLE_TIMEOUT_S,
            f"all {FLEET_PROBES} probes to have run",
            interval=0.2,
        )
        runs0, t0 = sup.probe_runs(), time.monotonic()
        for conns in CONNECTIONS:
            level = wrk_level(sup, conns, s.wrk_s)
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


def wrk_level(
    sup: Supervisor, conns: int, wrk_s: int, path: str = "/health", script: Path | None = None
) -> dict[str, Any]:
    """One wrk run on `path` (or the requests a Lua `script` makes) at `conns` connections,
    with the watchdog gap and probe runs meanwhile."""
    threads = min(2, conns)  # wrk needs at least one connection per thread
    cmd = ["wrk", "--latency", f"-t{threads}", f"-c{conns}", f"-d{wrk_s}s"]
    if script is not None:
        cmd += ["-s", str(script)]
    url = f"http://127.0.0.1:{sup.port}{path}"
    before = sup.probe_runs()
    w0 = time.monotonic()
    proc = spawn([*cmd, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=wrk_s + 30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {wrk_s + 30} s") from None
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
    return level
