"""The printed table of a chaos run, and its JSON. Pure: text from a Record and its Verdict."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import Any

from devtools.chaos.record import Record
from devtools.chaos.verdict import Verdict

MAX_PROBLEMS = 12  # per check, in the table (the JSON has them all)


def p95(values: list[float]) -> float:
    """The 95th percentile (inclusive); the value itself for one sample."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def _times(values: list[float]) -> str:
    if not values:
        return f"{'-':>7} {'-':>7} {'-':>7}"
    return f"{statistics.median(values):7.1f} {p95(values):7.1f} {max(values):7.1f}"


def table(record: Record, verdict: Verdict, mode: str) -> str:
    """The whole report as text."""
    injected = sum(1 for f in record.faults if f.start is not None)
    skipped = sum(1 for f in record.faults if f.skipped)
    seconds = (record.finished or record.started) - record.started
    lines = [
        f"chaos run ({mode}), seed {record.seed}: {injected} faults injected, {skipped} skipped, "
        f"{seconds:.0f} s from the first planned fault to settled",
        "",
        f"{'kind':<16} {'n':>3} {'skip':>4} {'detected':>8} {'repaired':>8} "
        f"{'detect s':>8}   {'repair s: median':>16} {'p95':>7} {'max':>7}",
    ]
    for row in verdict.kinds:
        detect = f"{statistics.median(row.detect_s):8.1f}" if row.detect_s else f"{'-':>8}"
        lines.append(
            f"{row.kind.value:<16} {row.injected:>3} {row.skipped:>4} {row.detected:>8} "
            f"{row.repaired:>8} {detect}   {'':>9}{_times(row.repair_s)}"
        )
    lines += ["", *_figures(verdict), "", f"{'check':<48} result"]
    for check in verdict.checks:
        mark = "PASS" if check.ok else "FAIL"
        lines.append(f"{mark} {check.name:<43} {check.detail}")
        shown = check.problems if not check.ok else ()
        lines += [f"       {p}" for p in shown[:MAX_PROBLEMS]]
        if len(shown) > MAX_PROBLEMS:
            lines.append(f"       ... and {len(shown) - MAX_PROBLEMS} more (see the JSON report)")
    lines += ["", f"verdict: {'PASS' if verdict.ok else 'FAIL'}"]
    return "\n".join(lines)


def _figures(verdict: Verdict) -> list[str]:
    lines = []
    for fp in verdict.footprints:
        whose = "the run" if fp.life == 0 else f"longest life ({fp.life})"
        lines.append(
            f"{whose}, measured over {fp.span_s:.0f} s: RSS {fp.rss_start / 2**20:.1f} -> "
            f"{fp.rss_end / 2**20:.1f} MiB, descriptors {fp.fds_start} -> {fp.fds_end}"
        )
    lines.append(
        f"supervisor CPU after start-up: {verdict.cpu_s:.1f} s, {verdict.cpu_percent:.2f} % of "
        "one core on average"
    )
    h = verdict.health
    if h:
        lines.append(
            f"/health while up: {h['n']:.0f} requests, p50 {h['p50_ms']:.1f} ms, "
            f"p99 {h['p99_ms']:.1f} ms, max {h['max_ms']:.1f} ms"
        )
    return lines


def as_json(record: Record, verdict: Verdict) -> dict[str, Any]:
    """The ground-truth log and the verdict, for a file next to the run's logs."""
    return {
        "seed": record.seed,
        "ok": verdict.ok,
        "faults": [f.to_json() for f in record.faults],
        "checks": [asdict(c) for c in verdict.checks],
        "kinds": [asdict(k) for k in verdict.kinds],
        "footprints": [asdict(f) for f in verdict.footprints],
        "cpu_percent": verdict.cpu_percent,
        "health": verdict.health,
        "lives": [asdict(life) | {"watchdog": len(life.watchdog)} for life in record.lives],
        "messages": [asdict(m) for m in record.messages],
        "loads": [asdict(x) for x in record.loads],
        "footprint": [asdict(p) for p in record.proc],  # the supervisor's, each second
        "host_cpu": record.host_cpu,
        "host_memory": record.host_memory,
        "units": [asdict(u) for u in record.units],  # systemd's view, polled by the run
        "incarnations": [asdict(i) for i in record.incarnations],
        "recovery_actions": [asdict(a) for a in record.actions],
        "errors": record.errors,
    }
