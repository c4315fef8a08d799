"""`python -m devtools.bench [--quick] [--json] [--seed N] [--save FILE] [--only SECTION...]`."""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import devtools.bench
from devtools.bench.detection import bench_detection
from devtools.bench.hang import bench_hang
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


@contextlib.contextmanager
def section(results: dict[str, Any], name: str) -> Iterator[None]:
    """Notes in `results` which section failed and why, so the figures of those that finished
    are still printed."""
    try:
        yield
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):
            results["failed"] = {"section": name, "error": f"{type(exc).__name__}: {exc}"}
        raise


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
        with section(results, "startup"):
            results["startup_ready_s"] = bench_startup(box, work, s)
    if "idle" in sections:
        say(f"idle CPU/RSS, 3 and 100 targets, {s.idle_windows} x {s.idle_window_s:g} s")
        with section(results, "idle"):
            results["idle"] = bench_idle(box, work, s)
    if "detection" in sections:
        say(f"detection latency, {s.kills} kills")
        with section(results, "detection"):
            results["detection"] = bench_detection(box, work, s)
    tools: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
        ("supervisor", "the supervisor", lambda: bench_supervisor_recovery(box, work, s, rng)),
        ("monit", "Monit", lambda: bench_monit_recovery(box, work, s, rng)),
        ("systemd", "systemd alone (Restart=on-failure)", lambda: bench_systemd_recovery(box, s)),
    ]
    for key, words, bench in tools:
        if key in sections:
            say(f"recovery by {words}")
            with section(results, key):
                for scenario, result in bench().items():
                    recovery[scenario][key] = result
    if "load" in sections:
        say(f"GET /health under load, {s.wrk_s} s per level")
        with section(results, "load"):
            results["load"] = bench_load(box, work, s)
    if "history" in sections:
        say("history: RSS on vs off, / and /events with stored events, bursts vs watchdog")
        with section(results, "history"):
            results["history"] = bench_history(box, work, s)
    if "hang" in sections:
        say(f"hangs side by side (evidence on, off, Monit), {s.hang_reps} each")
        with section(results, "hang"):
            results["hang"] = bench_hang(box, work, s, rng)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Check the tools, bring the sandbox up, run the sections, always tear everything down."""
    s = Settings.make(args.quick)
    sections = set(args.only or SECTIONS)
    for tool, needed in (
        ("monit", bool({"monit", "hang"} & sections)),
        ("wrk", bool({"load", "history"} & sections)),
    ):
        if needed and shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (apt-get install {tool}), or leave it out")
    if not SUPERVISOR_BIN.exists():
        raise BenchError(f"{SUPERVISOR_BIN} is missing: run ./scripts/bootstrap.sh dev first")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp:
        work = Path(tmp)
        box = Sandbox(work / "sandbox", dashboard_port=free_port(), restart="no")
        try:
            say(f"sandbox up under {box.root} (dashboard on :{box.dashboard_port})")
            box.up()
            return measure(box, work, s, sections, seed)
        finally:
            say("tearing down")
            stop_children()
            try:
                box.down()
            except Exception as exc:
                say(f"sandbox teardown failed: {exc}")


def measure(box: Sandbox, work: Path, s: Settings, sections: set[str], seed: int) -> dict[str, Any]:
    """The chosen sections against a running sandbox: the results, with the figures of every
    section that finished even when a later one failed (then `failed` says which and why)."""
    results: dict[str, Any] = {"machine": machine(), "settings": settings_of(s, sections, seed)}
    try:
        run_sections(box, work, s, random.Random(seed), sections=sections, results=results)
    except Exception as exc:
        if "failed" not in results:  # not in a section
            raise
        say(f"section {results['failed']['section']} failed: {exc}")
        if not isinstance(exc, BenchError | SandboxError | TimeoutError):
            traceback.print_exc()  # a bug in the bench itself: say where
    finally:
        stop_children()
    results["machine"]["loadavg_end"] = loadavg()
    results["machine"]["source_end"] = source_hash()
    results["runtime_s"] = round(time.monotonic() - STARTED, 1)
    results["targets"] = evaluate(results)
    return results


def settings_of(s: Settings, sections: set[str], seed: int) -> dict[str, Any]:
    """What the run did, as the results record it."""
    return {
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
        "history_events": s.history_events,
        "hang_reps": s.hang_reps,
        "probe": {"period_s": s.period_s, "timeout_s": TIMEOUT_S, "threshold": FAILURE_THRESHOLD},
    }


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
    if "failed" in results:
        failed = results["failed"]
        print(f"bench: section {failed['section']} failed: {failed['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
