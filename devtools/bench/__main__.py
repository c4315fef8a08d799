"""`python -m devtools.bench [--quick] [--json] [--seed N] [--save FILE] [--only SECTION...]`."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import devtools.bench
from devtools.bench.detection import bench_detection
from devtools.bench.history import bench_history
from devtools.bench.load import bench_load
from devtools.bench.machine import loadavg, machine, source_hash
from devtools.bench.overhead import bench_idle, bench_startup
from devtools.bench.processes import stop_children
from devtools.bench.recovery import (
    bench_monit_recovery,
    bench_supervisor_recovery,
    bench_systemd_recovery,
)
from devtools.bench.report import evaluate, markdown
from devtools.bench.settings import (
    FAILURE_THRESHOLD,
    PERIOD_S,
    SCENARIOS,
    SECTIONS,
    STARTED,
    SUPERVISOR_BIN,
    TIMEOUT_S,
    BenchError,
    Settings,
    say,
)
from devtools.net import free_port
from devtools.sandbox import Sandbox, SandboxError


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_sections(
    box: Sandbox,
    work: Path,
    s: Settings,
    rng: random.Random,
    *,
    sections: set[str],
    results: dict[str, Any],
) -> None:
    """Each chosen section in turn; results go into `results` as they come."""
    recovery: dict[str, dict[str, Any]] = {k: {} for k in SCENARIOS}
    results["recovery"] = recovery
    if "startup" in sections:
        say(f"startup to READY=1, {s.startup_reps} starts")
        results["startup_ready_s"] = bench_startup(box, work, s)
    if "idle" in sections:
        say(f"idle CPU/RSS, 3 and 100 targets, {s.idle_windows} x {s.idle_window_s:g} s")
        results["idle"] = bench_idle(box, work, s)
    if "detection" in sections:
        say(f"detection latency, {s.kills} kills")
        results["detection"] = bench_detection(box, work, s)
    tools: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
        ("supervisor", "the supervisor", lambda: bench_supervisor_recovery(box, work, s, rng)),
        ("monit", "Monit", lambda: bench_monit_recovery(box, work, s, rng)),
        ("systemd", "systemd alone (Restart=on-failure)", lambda: bench_systemd_recovery(box, s)),
    ]
    for key, words, bench in tools:
        if key in sections:
            say(f"recovery by {words}")
            for scenario, result in bench().items():
                recovery[scenario][key] = result
    if "load" in sections:
        say(f"GET /health under load, {s.wrk_s} s per level")
        results["load"] = bench_load(box, work, s)
    if "history" in sections:
        say("history: RSS on vs off, / and /events with 100,000 events, bursts vs watchdog")
        results["history"] = bench_history(box, work, s)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Check the tools, bring the sandbox up, run the sections, always tear everything down."""
    s = Settings.make(args.quick)
    sections = set(args.only or SECTIONS)
    for tool, needed in (
        ("monit", "monit" in sections),
        ("wrk", bool({"load", "history"} & sections)),
    ):
        if needed and shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (apt-get install {tool}), or leave it out")
    if not SUPERVISOR_BIN.exists():
        raise BenchError(f"{SUPERVISOR_BIN} is missing: run ./scripts/bootstrap.sh dev first")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": {
            "quick": s.quick,
            "seed": seed,
            "sections": [x for x in SECTIONS if x in sections],
            "startup_reps": s.startup_reps,
            "idle_windows": s.idle_windows,
            "idle_window_s": s.idle_window_s,
            "kills": s.kills,
            "recovery_reps": s.reps,
            "not_recovered_wait_s": s.not_recovered_wait_s,
            "wrk_s": s.wrk_s,
            "rss_pairs": s.rss_pairs,
            "bursts": s.bursts,
            "probe": {"period_s": PERIOD_S, "timeout_s": TIMEOUT_S, "threshold": FAILURE_THRESHOLD},
        },
    }
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp:
        work = Path(tmp)
        box = Sandbox(work / "sandbox", dashboard_port=free_port(), restart="no")
        try:
            say(f"sandbox up under {box.root} (dashboard on :{box.dashboard_port})")
            box.up()
            run_sections(box, work, s, rng, sections=sections, results=results)
        finally:
            say("tearing down")
            stop_children()
            try:
                box.down()
            except Exception as exc:
                say(f"sandbox teardown failed: {exc}")
    results["machine"]["loadavg_end"] = loadavg()
    results["machine"]["source_end"] = source_hash()
    results["runtime_s"] = round(time.monotonic() - STARTED, 1)
    results["targets"] = evaluate(results)
    return results


def parser() -> argparse.ArgumentParser:
    """The command line (the package docstring is its description)."""
    p = argparse.ArgumentParser(
        prog="python -m devtools.bench",
        description=devtools.bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="fewer, shorter runs (< 3 min)")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument("--seed", type=int, help="seed of the random fault delays")
    p.add_argument("--save", type=Path, metavar="FILE", help="also write the JSON to FILE")
    p.add_argument(
        "--only", nargs="+", choices=SECTIONS, metavar="SECTION", help=f"of {', '.join(SECTIONS)}"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 with `bench: <why>`, 130 when interrupted."""
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGHUP, _interrupted)
    try:
        results = run(args)
    except (BenchError, SandboxError, TimeoutError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; everything was torn down", file=sys.stderr)
        return 130
    if args.save:
        args.save.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2) if args.json else markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
