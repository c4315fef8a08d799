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
from devtools.bench.stats import max_gap, parse_answers, parse_wrk
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
                f"  wrk -c{conns}: {level['rps']:.0f} served/s, {level['throttled']} throttled, "
                f"p99 {level['p99_ms']:.2f} ms, watchdog gap {level['watchdog_max_gap_s']:.2f} s"
            )
        runs1, t1 = sup.probe_runs(), time.monotonic()
        statuses = sup.statuses()  # waits out a 429 (the load may have throttled it)
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


# Counts what each answer was (wrk's own count lumps 429s with served answers): served is
# 200 or 503 with a body (a /health answer, pass/warn or fail), throttled is 429, the rest is
# other. Each wrk thread has its own Lua state; `done` adds them up through `thread:get`.
COUNTING_LUA = """local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  served, throttled, other = 0, 0, 0
end
function response(status, headers, body)
  if (status == 200 or status == 503) and body ~= nil and #body > 0 then
    served = served + 1
  elseif status == 429 then
    throttled = throttled + 1
  else
    other = other + 1
  end
end
function done(summary, latency, requests)
  local s, t, o = 0, 0, 0
  for _, thread in ipairs(threads) do
    s = s + thread:get("served")
    t = t + thread:get("throttled")
    o = o + thread:get("other")
  end
  io.write(string.format("answers: served %d throttled %d other %d in %d us\\n",
    s, t, o, summary.duration))
end
"""


def wrk_level(
    sup: Supervisor, conns: int, wrk_s: int, path: str = "/health", lua: str = ""
) -> dict[str, Any]:
    """One wrk run on `path` (or the requests a Lua `lua` snippet makes) at `conns`
    connections, with the watchdog gap and probe runs meanwhile. `rps` counts served answers
    only (`parse_answers`); wrk's own figure, 429s included, is `wrk_rps`."""
    threads = min(2, conns)  # wrk needs at least one connection per thread
    script = sup.dir / f"wrk-{conns}-{time.monotonic_ns()}.lua"
    script.write_text(COUNTING_LUA + lua)
    cmd = ["wrk", "--latency", f"-t{threads}", f"-c{conns}", f"-d{wrk_s}s", "-s", str(script)]
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
    level["wrk_rps"] = level["rps"]
    level.update(parse_answers(out))
    level.update(
        connections=conns,
        threads=threads,
        duration_s=round(w1 - w0, 2),
        watchdog_max_gap_s=round(max_gap(sup.watchdog, w0, w1), 3),
        probe_runs=sum(after.values()) - sum(before.values()),
        probe_runs_expected=round(FLEET_PROBES * (w1 - w0) / PERIOD_S, 1),
    )
    return level
