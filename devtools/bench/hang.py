"""Hangs side by side: a stopped (SIGSTOP) and a deadlocked dashboard (plus a spinning one),
watched by the supervisor as it is (stuck evidence from /proc on, the default), by the
supervisor with `stuck_evidence = false` (the timeout rule alone: what it did before), and by
Monit with the same period, timeout and failure count.

Per repetition: from the fault to `fail` (the supervisor: the time of its status event in
/events; Monit: the moment its restart took the hung process down) and to serving again from
a new process.

Where in the probe period a hang falls decides most of the figure. For the supervisor the
phases are stratified: of n repetitions the k-th falls (k + 0.5)/n of a period before its
next probe (read from its last probe in /history), in a seeded random order, so the median
is the median over the period and not one draw of seven. Monit's schedule cannot be read:
its repetitions start after a random delay over one period.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from devtools.bench.faults import Fault, repair, served_again, signal_unit
from devtools.bench.monit import Monit, monit_checks
from devtools.bench.settings import POLL_S, RECOVERY_TIMEOUT_S, Settings, say
from devtools.bench.stats import fmt_s, summary
from devtools.bench.watchers import Supervisor, fleet_config, run_dir, supervisor
from devtools.demo import faults as demo_faults
from devtools.sandbox import Sandbox, wait_for

HANGS = {
    "sigstop": int(signal.SIGSTOP),
    "deadlock": demo_faults.signal_number(demo_faults.FAULTS["deadlock"].signal_name or ""),
    "spin": demo_faults.signal_number(demo_faults.FAULTS["spin"].signal_name or ""),
}
TOOLS = {  # tool -> the hangs it is measured on
    "supervisor": ("sigstop", "deadlock", "spin"),
    "timeout-only": ("sigstop", "deadlock"),
    "monit": ("sigstop", "deadlock"),
}
WORDS = {
    "supervisor": "supervisor (stuck evidence on, the default)",
    "timeout-only": "supervisor, `stuck_evidence = false` (the timeout rule alone, as before)",
    "monit": "Monit (same period, timeout, 3 cycles)",
}


def bench_hang(box: Sandbox, work: Path, s: Settings, rng: random.Random) -> dict[str, Any]:
    """Every tool on its hangs, `s.hang_reps` times each."""
    results: dict[str, dict[str, Any]] = {tool: {} for tool in TOOLS}
    # The test suite's smoke run proves the section works: the supervisor as shipped only.
    for tool in ("supervisor",) if s.smoke else ("supervisor", "timeout-only"):
        build = partial(
            fleet_config,
            box,
            recovery=True,
            stuck_evidence=tool == "supervisor",
            period_s=s.period_s,
        )
        with supervisor(box, work, f"hang-{tool}", build) as sup:
            for hang in TOOLS[tool]:
                reasons: list[str] = []
                results[tool][hang] = _reps(
                    box,
                    s,
                    hang=hang,
                    settle=sup.wait_pass,
                    # The smoke run's figures are not judged: its fault goes in at once.
                    phase=_Phases(sup, s, rng) if not s.smoke else _at_once,
                    fail_after=_fail_event(sup, reasons),
                )
                results[tool][hang]["reasons"] = reasons
                say(f"  {tool} {hang}: {fmt_hang(results[tool][hang])}")
    for hang in () if s.smoke else TOOLS["monit"]:
        check, checks = monit_checks(box, "hung")
        mon = Monit(run_dir(work, f"hang-monit-{hang}"), checks, s.period_s)
        try:
            mon.start()
            results["monit"][hang] = _reps(
                box,
                s,
                hang=hang,
                settle=_MonitSettle(mon, check),
                phase=_random_phase(rng, s.period_s),
                fail_after=None,
            )
        finally:
            mon.stop()
        say(f"  monit {hang}: {fmt_hang(results['monit'][hang])}")
    return results


class _MonitSettle:
    """Before each repetition but the first: until Monit logged the check fine again (it
    acts on state changes only)."""

    def __init__(self, mon: Monit, check: str) -> None:
        self._mon = mon
        self._check = check
        self._mark: int | None = None

    def __call__(self) -> None:
        if self._mark is not None:
            self._mon.wait_ok(self._check, self._mark)
        self._mark = len(self._mon.lines())


def _fail_event(sup: Supervisor, reasons: list[str]) -> Callable[[float], float | None]:
    """When the dashboard first turned `fail` after a wall time (its status event); the
    reason it gave goes into `reasons`."""

    def fail_after(wall: float) -> float | None:
        doc = sup.client.json("/events?target=dashboard&kind=status&limit=50")
        found: list[tuple[float, str]] = [
            (e["id"] / 1e6, str(e["data"].get("reason", "")))
            for e in doc["events"]
            if e["data"].get("to") == "fail" and e["id"] / 1e6 >= wall
        ]
        if not found:
            return None
        at, why = min(found)
        reasons.append(why)
        return at - wall

    return fail_after


class _Phases:
    """Waits until the next fault is due: (k + 0.5)/n of a period before the next probe."""

    def __init__(self, sup: Supervisor, s: Settings, rng: random.Random) -> None:
        self._sup = sup
        self._period = period = s.period_s
        n = s.hang_reps
        self._waits = [period * (k + 0.5) / n for k in range(n)]
        rng.shuffle(self._waits)

    def __call__(self) -> None:
        # A probe run from now on sets the schedule: /health may pass on the unit's state
        # before a new process's first probe, and a restart moves the schedule.
        since = time.time()
        last = wait_for(
            lambda: self._last_probe(since), self._period * 2, "a dashboard probe", interval=0.25
        )
        started = last["t"] - last["ms"] / 1000  # periods run start to start
        at = started + self._period - self._waits.pop()
        while at < time.time() + 0.05:
            at += self._period
        time.sleep(at - time.time())

    def _last_probe(self, since: float) -> dict[str, Any] | None:
        status, body = self._sup.client.get("/history/dashboard")
        if status != 200:
            return None  # 429: polled too often for the supervisor's own CPU budget
        ring = json.loads(body)["probes"].get("http")
        return ring[-1] if ring and ring[-1]["t"] >= since else None


def _at_once() -> None:
    """No wait for a phase."""


def _random_phase(rng: random.Random, period_s: float) -> Callable[[], None]:
    return lambda: time.sleep(rng.uniform(0, period_s))


def _reps(
    box: Sandbox,
    s: Settings,
    *,
    hang: str,
    settle: Callable[[], None],
    phase: Callable[[], None],
    fail_after: Callable[[float], float | None] | None,
) -> dict[str, Any]:
    """`s.hang_reps` repetitions of one hang: detection and serving-again times."""
    detected: list[float] = []
    served: list[float] = []
    missed: list[str] = []
    for _ in range(s.hang_reps):
        box.reset_failed()
        settle()
        phase()  # found by polling: where in the period it falls matters
        old, wall, t0 = signal_unit(box, "dashboard", HANGS[hang])
        fault = Fault(hang, "dashboard", old, t0)
        gone, took = _watch(box, fault)
        if took is None:
            missed.append(f"not serving after {RECOVERY_TIMEOUT_S:g} s")
        else:
            served.append(took)
            seen = fail_after(wall) if fail_after is not None else gone
            if seen is not None:
                detected.append(seen)
        repair(box, fault)
    result: dict[str, Any] = {"not_recovered": missed}
    if detected:
        result["detected"] = summary(detected)
    if served:
        result["served"] = summary(served)
    return result


def _watch(box: Sandbox, fault: Fault) -> tuple[float | None, float | None]:
    """Seconds until the hung process was gone, and until a new one served (None: never)."""
    gone = None
    end = fault.t0 + RECOVERY_TIMEOUT_S
    while time.monotonic() < end:
        if gone is None and not fault.old.alive():
            gone = time.monotonic() - fault.t0
        took = served_again(box, fault)
        if took is not None:
            return gone, took
        time.sleep(POLL_S)
    return gone, None


def fmt_hang(o: dict[str, Any] | None) -> str:
    """`fail` after X, serving again after Y (medians), or what went wrong."""
    if not o:
        return "not run"
    parts = []
    for key, words in (("detected", "fail"), ("served", "serving")):
        if key in o:
            v = o[key]
            parts.append(f"{words} {fmt_s(v['median'])} ({v['min']:.2f}-{v['max']:.2f})")
    text = ", ".join(parts) or "nothing measured"
    n = len(o["served"]["values"]) if "served" in o else 0
    text += f", n={n}"
    if o["not_recovered"]:
        text += f"; {len(o['not_recovered'])} not recovered"
    return text


def md_hang(r: dict[str, Any]) -> list[str]:
    """The side-by-side table."""
    h = r.get("hang")
    if not h:
        return []
    out = [
        "Hangs, from the fault to `fail` and to serving again from a new process, median "
        "(min-max); Monit's `fail` is its restart taking the hung process down:",
        "",
        "| hang | " + " | ".join(WORDS[t] for t in TOOLS) + " |",
        "|---|" + "---|" * len(TOOLS),
    ]
    for hang in HANGS:
        cells = [fmt_hang(h[t].get(hang)) if hang in TOOLS[t] else "-" for t in TOOLS]
        out.append(f"| {hang} | " + " | ".join(cells) + " |")
    return [*out, ""]


def hang_targets(h: dict[str, Any] | None) -> list[dict[str, str]]:
    """SIGSTOP and deadlock: `fail` under 5 s and serving again under 6 s (medians)."""
    rows = []
    for hang in ("sigstop", "deadlock"):
        o = (h or {}).get("supervisor", {}).get(hang)
        for key, words, goal in (("detected", "fail", 5.0), ("served", "serving again", 6.0)):
            if o and key in o:
                m = o[key]["median"]
                rows.append(
                    {
                        "target": f"hang ({hang}) -> {words}, median",
                        "measured": fmt_s(m),
                        "goal": f"< {goal:g} s",
                        "result": "pass" if m < goal else "miss",
                    }
                )
    return rows
