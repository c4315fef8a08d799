#!/usr/bin/env python3
"""Benchmarks of the real supervisor process against the sandbox's demo fleet.

Prints a Markdown table (median, min, max over repetitions) or JSON (--json):
- startup: process start -> READY=1 on a real NOTIFY_SOCKET;
- idle overhead: the supervisor's CPU (% of one core, from /proc utime+stime) and RSS while
  it watches the three demo targets at default probe settings, over several windows;
- the same with 100 generated targets (units running `sleep`, each with a heartbeat probe).

Run after ./scripts/test.sh has set up .venv:  .venv/bin/python scripts/bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from supervisor import __version__  # noqa: E402
from supervisor.sandbox import Sandbox  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fleet_config(box: Sandbox, port: int, extra_targets: int = 0) -> str:
    hb = box.heartbeat_path
    text = f"""state_dir = "{box.root / "bench-state"}"
[http]
port = {port}
[[targets]]
name = "trader"
unit = "trader.service"
critical = true
  [[targets.probes]]
  type = "heartbeat"
  path = "{hb("trader")}"
  max_age_s = 15
[[targets]]
name = "dashboard"
unit = "dashboard.service"
ports = [{box.dashboard_port}]
  [[targets.probes]]
  type = "http"
  url = "http://127.0.0.1:{box.dashboard_port}/health"
[[targets]]
name = "position-monitor"
unit = "position-monitor.service"
  [[targets.probes]]
  type = "heartbeat"
  path = "{hb("position-monitor")}"
  max_age_s = 15
"""
    for i in range(extra_targets):
        text += (
            f'[[targets]]\nname = "gen{i}"\nunit = "gen{i}.service"\n'
            f'  [[targets.probes]]\n  type = "heartbeat"\n  path = "{hb("trader")}"\n'
            "  max_age_s = 15\n"
        )
    return text


@contextmanager
def supervisor(box: Sandbox, cfg_text: str, workdir: Path) -> Iterator[tuple[int, float]]:
    """Start `supervisor run`; yield (pid, seconds from exec to READY=1)."""
    cfg = workdir / "config.toml"
    cfg.write_text(cfg_text)
    notify_path = workdir / "notify"
    notify_path.unlink(missing_ok=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(30)
    env = {**os.environ, **box.env(), "NOTIFY_SOCKET": str(notify_path)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/supervisor"), "run", "--config", str(cfg), "--log-level", "WARNING"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        while notify.recv(4096) != b"READY=1":
            pass
        yield proc.pid, time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        notify.close()


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def measure_overhead(pid: int, windows: int, window_s: float) -> dict[str, dict[str, float]]:
    """CPU % of one core per window, and RSS at the end of each window."""
    time.sleep(window_s)  # settle: the first probes, imports and caches are not idle cost
    cpu, rss = [], []
    for _ in range(windows):
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(window_s)
        cpu.append(100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0))
        rss.append(rss_mb(pid))
    return {"cpu_percent": summary(cpu), "rss_mb": summary(rss)}


def bench_startup(box: Sandbox, work: Path, reps: int) -> dict[str, float]:
    times = []
    for _ in range(reps):
        with supervisor(box, fleet_config(box, free_port()), work) as (_pid, ready_s):
            times.append(ready_s)
    return summary(times)


def bench_idle(
    box: Sandbox, work: Path, targets: int, windows: int, window_s: float
) -> dict[str, dict[str, float]]:
    extra = targets - 3
    for i in range(extra):
        box.install_unit(
            f"gen{i}.service", "[Service]\nExecStart=/bin/sleep infinity\n", reload=False
        )
    if extra:
        box.daemon_reload()
        box.systemctl("start", *[f"gen{i}.service" for i in range(extra)])
    try:
        with supervisor(box, fleet_config(box, free_port(), extra), work) as (pid, _ready):
            return measure_overhead(pid, windows, window_s)
    finally:
        if extra:
            box.systemctl("stop", *[f"gen{i}.service" for i in range(extra)], check=False)


def row(name: str, s: dict[str, float], unit: str, target: str) -> str:
    return (
        f"| {name} | {s['median']:.3f} {unit} | {s['min']:.3f} | {s['max']:.3f} | "
        f"{s['n']:.0f} | {target} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short windows (under 3 minutes)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args()
    windows, window_s, reps = (5, 6.0, 5) if args.quick else (6, 30.0, 7)
    results: dict[str, object] = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "supervisor": __version__,
        },
        "settings": {"windows": windows, "window_s": window_s, "startup_reps": reps},
    }
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp:
        box = Sandbox(Path(tmp) / "sandbox", dashboard_port=free_port())
        work = Path(tmp)
        try:
            box.up()
            results["startup_ready_s"] = bench_startup(box, work, reps)
            results["idle_3_targets"] = bench_idle(box, work, 3, windows, window_s)
            results["idle_100_targets"] = bench_idle(box, work, 100, windows, window_s)
        finally:
            box.down()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    m = results["machine"]
    print(
        f"sidecar-supervisor {m['supervisor']} on {m['cores']} cores, Python {m['python']}, "
        f"kernel {m['kernel']}; {windows} windows of {window_s:g} s\n"
    )
    print("| measure | median | min | max | n | target |")
    print("|---|---|---|---|---|---|")
    print(row("startup to READY=1", results["startup_ready_s"], "s", "< 1 s"))
    idle3, idle100 = results["idle_3_targets"], results["idle_100_targets"]
    print(row("idle CPU, 3 targets", idle3["cpu_percent"], "%", "< 0.2 %"))
    print(row("RSS, 3 targets", idle3["rss_mb"], "MB", "< 50 MB"))
    print(row("idle CPU, 100 targets", idle100["cpu_percent"], "%", "< 2 %"))
    print(row("RSS, 100 targets", idle100["rss_mb"], "MB", ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
