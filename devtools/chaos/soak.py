"""What a soak showed (``python -m devtools.chaos --soak``): one supervisor life over hours.

``python -m devtools.chaos.soak WORK`` reads the run's ``report.json`` (the supervisor's
footprint, sampled each second from /proc) and its history database, and prints the figures
docs/RELIABILITY.md's "Soak" section gives: RSS per hour after the first 10 minutes, the trend
(a least-squares line through every quiet sample, in MiB per hour), descriptors at the start
and the end, CPU, and the size of the history database. `summarize` is pure.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.chaos.record import ProcSample

WARM_S = 600.0  # a new process reaches its working size in its first minutes
LATE_S = 3600.0  # the late trend: from here
WINDOW_S = 150.0  # each hourly figure: the median of the quiet samples within this of it
EDGE = 5  # descriptors: the fewest among this many quiet samples at each end
GOAL_MIB_PER_H = 0.5
HISTORY_FILES = ("history.sqlite3", "history.sqlite3-wal")


@dataclass(frozen=True)
class Soak:
    """The footprint of one life, from `WARM_S` after it was ready to its last sample."""

    life: int
    lived_s: float  # from READY=1 to its last sample
    rss_mib: list[tuple[float, float]]  # (minutes after READY=1, median RSS in MiB)
    trend_mib_per_h: float
    fds_start: int
    fds_end: int
    cpu_percent: float  # of one core, after the warm-up
    quiet_samples: int
    # Threads after 10 minutes, at the end, and the most seen: each new thread may get a
    # malloc arena of its own, a step in RSS that no trim gives back. None: not sampled.
    threads: tuple[int, int, int] | None = None
    # The same line through the quiet samples after the first hour, shown and not judged:
    # what a working size that takes an hour to fill (the history's SQLite cache grows with
    # its database) leaves of the trend. None: the life was too short to tell.
    late_trend_mib_per_h: float | None = None

    @property
    def ok(self) -> bool:
        """The goals of issue 21: under 0.5 MiB an hour, no descriptor more at the end."""
        return self.trend_mib_per_h < GOAL_MIB_PER_H and self.fds_end <= self.fds_start


def summarize(samples: Sequence[ProcSample], life: int, ready_at: float) -> Soak:
    """The soak's figures for `life` (READY=1 at `ready_at`) from its samples."""
    mine = [s for s in samples if s.life == life and s.at >= ready_at]
    if not mine:
        raise ValueError(f"no samples of life {life}")
    warm = [s for s in mine if s.at >= ready_at + WARM_S]
    quiet = [s for s in warm if s.quiet]
    if len(quiet) < 2 * EDGE:
        raise ValueError(f"life {life}: {len(quiet)} quiet samples after its first 10 minutes")
    return Soak(
        life=life,
        lived_s=mine[-1].at - ready_at,
        rss_mib=_hourly(quiet, ready_at),
        trend_mib_per_h=_slope([(s.at, s.rss_bytes) for s in quiet]) * 3600 / 2**20,
        fds_start=min(s.fds for s in quiet[:EDGE]),
        fds_end=min(s.fds for s in quiet[-EDGE:]),
        cpu_percent=100 * (warm[-1].cpu_s - warm[0].cpu_s) / max(warm[-1].at - warm[0].at, 1e-9),
        quiet_samples=len(quiet),
        threads=_threads(warm),
        late_trend_mib_per_h=_late_trend(quiet, ready_at),
    )


def _late_trend(quiet: list[ProcSample], ready_at: float) -> float | None:
    late = [(s.at, float(s.rss_bytes)) for s in quiet if s.at >= ready_at + LATE_S]
    if len(late) < 2 * EDGE or late[-1][0] - late[0][0] < WARM_S:
        return None
    return _slope(late) * 3600 / 2**20


def _threads(warm: list[ProcSample]) -> tuple[int, int, int] | None:
    counted = [s.threads for s in warm if s.threads is not None]
    return (counted[0], counted[-1], max(counted)) if counted else None


def _hourly(quiet: list[ProcSample], ready_at: float) -> list[tuple[float, float]]:
    """At 10 minutes, at every full hour after, and at the end: the median RSS around it."""
    end = quiet[-1].at - ready_at
    marks = [WARM_S, *range(3600, int(end), 3600), end]
    figures = []
    for mark in marks:
        near = [s.rss_bytes for s in quiet if abs(s.at - ready_at - mark) <= WINDOW_S]
        if near:
            figures.append((mark / 60, statistics.median(near) / 2**20))
    return figures


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den if den else 0.0


def table(soak: Soak, history_bytes: int, faults: int) -> str:
    """The figures as the Markdown docs/RELIABILITY.md shows."""
    rows = ["| minutes after start | RSS (median, MiB) |", "|---|---|"]
    rows += [f"| {minute:.0f} | {mib:.1f} |" for minute, mib in soak.rss_mib]
    verdict = "met" if soak.ok else "NOT met"
    late = []
    if soak.late_trend_mib_per_h is not None:
        late = [
            f"- RSS trend after the first hour: {soak.late_trend_mib_per_h:+.2f} MiB/h "
            "(shown, not judged)"
        ]
    threads = []
    if soak.threads is not None:
        first, last, most = soak.threads
        threads = [f"- threads: {first} after 10 minutes, {last} at the end, {most} at most"]
    return "\n".join(
        [
            f"One life of {soak.lived_s / 3600:.2f} h under {faults} faults; "
            f"{soak.quiet_samples} quiet samples after its first 10 minutes.",
            "",
            *rows,
            "",
            f"- RSS trend after the first 10 minutes: {soak.trend_mib_per_h:+.2f} MiB/h "
            f"(goal < {GOAL_MIB_PER_H} MiB/h: {verdict})",
            *late,
            f"- descriptors: {soak.fds_start} after 10 minutes, {soak.fds_end} at the end",
            f"- CPU after the first 10 minutes: {soak.cpu_percent:.2f} % of one core",
            f"- history database at the end: {history_bytes / 2**20:.1f} MiB",
            *threads,
        ]
    )


def _longest_life(report: dict[str, Any]) -> tuple[int, float]:
    lives = [life for life in report["lives"] if life.get("ready")]
    longest = max(lives, key=lambda life: (life.get("exited") or 0) - life["ready"])
    return int(longest["n"]), float(longest["ready"])


def main(argv: Sequence[str] | None = None) -> int:
    """Print the soak's figures for the run in WORK; exit 1 when a goal is missed."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m devtools.chaos.soak WORK", file=sys.stderr)
        return 2
    work = Path(args[0])
    report = json.loads((work / "report.json").read_text())
    samples = [ProcSample(**s) for s in report["footprint"]]
    life, ready_at = _longest_life(report)
    soak = summarize(samples, life, ready_at)
    history = sum(
        (work / "state" / name).stat().st_size
        for name in HISTORY_FILES
        if (work / "state" / name).exists()
    )
    injected = sum(1 for f in report["faults"] if f.get("start"))
    print(table(soak, history, injected))
    return 0 if soak.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
