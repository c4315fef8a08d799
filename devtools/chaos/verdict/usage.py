"""The supervisor's footprint over the run (RSS and descriptors must not drift) and the CPU it
used. Pure."""

from __future__ import annotations

import statistics

from devtools.chaos.record import Life, ProcSample, Record
from devtools.chaos.verdict.parts import Check, Footprint, Verdict

RSS_DRIFT_LIMIT = 2 * 2**20
MEASURE_WINDOW = 5  # footprint: samples taken together at each end
# A new process grows by 3 to 4 MiB in its first minutes under faults, then all but stops
# (measured: one life of 11 minutes, +3.6 MiB by 210 s, +0.6 MiB in the 460 s after): its
# caches, rings and allocator arenas reach their working size. A leak is growth after that.
LIFE_WARM_UP_S = 180.0
# Every life measured over this long is judged (a leak in any of them fails the run); when no
# life lasted that long, the longest one is.
JUDGED_SPAN_S = 600.0


def footprint(record: Record, v: Verdict) -> Check:
    """RSS and descriptors within each life measured over `JUDGED_SPAN_S` once warm (one
    process: a leak shows there), else within the longest one; and from the first quiet
    moment after the run's warm-up to the last one (the run, whichever life answers at each
    end: shown, and judged only when no life could be measured, since two processes are not
    comparable: one a minute old has not reached its working size)."""
    name = "footprint drift (RSS < 2 MiB, descriptors 0)"
    lives = [fp for life in record.lives if (fp := _life_footprint(record, life)) is not None]
    _cpu(record, v)
    warm = max((f.repaired for f in record.faults if f.repaired and f.plan.n == 0), default=0.0)
    run = _measure(0, [s for s in record.proc if s.quiet and s.at > warm])
    longest = max(lives, key=lambda f: f.span_s, default=None)
    judged = [fp for fp in lives if fp.span_s >= JUDGED_SPAN_S]
    judged = judged or [fp for fp in (longest or run,) if fp is not None]
    v.footprints = [fp for fp in (run, *judged) if fp is not None]
    if not judged:
        # The short run kills the supervisor often and overlaps faults densely: it may never
        # be quiet twice. A long run must be.
        return Check(name, record.short, "not measured: never quiet twice after warm-up")
    problems = []
    for fp in judged:
        rss, fds = fp.rss_end - fp.rss_start, fp.fds_end - fp.fds_start
        if rss >= RSS_DRIFT_LIMIT or fds > 0:
            kinds = f"({fp.kinds_start} -> {fp.kinds_end})"
            problems.append(f"{_whose(fp)}: RSS {_mib(fp)}, descriptors {fds:+d} {kinds}")
    detail = "; ".join(
        f"{_whose(fp)} over {fp.span_s:.0f} s: RSS {_mib(fp)}, "
        f"descriptors {fp.fds_end - fp.fds_start:+d}{'' if fp in judged else ' (shown)'}"
        for fp in v.footprints
    )
    return Check(name, not problems, detail, tuple(problems))


def _whose(fp: Footprint) -> str:
    return "the run" if fp.life == 0 else f"life {fp.life}"


def _mib(fp: Footprint) -> str:
    return f"{(fp.rss_end - fp.rss_start) / 2**20:+.2f} MiB"


def _life_footprint(record: Record, life: Life) -> Footprint | None:
    """From the first quiet samples once the life is warm (it repaired a fault and has run
    `LIFE_WARM_UP_S`), to its last quiet ones."""
    if life.ready is None:
        return None
    repairs = [
        f.repaired
        for f in record.faults
        if f.repaired and f.target and f.start and f.start >= life.ready
    ]
    if not repairs:
        return None
    warm = max(min(repairs), life.ready + LIFE_WARM_UP_S)
    return _measure(
        life.n, [s for s in record.proc if s.life == life.n and s.quiet and s.at > warm]
    )


def _measure(life: int, quiet: list[ProcSample]) -> Footprint | None:
    """The first and last few quiet samples: median RSS, fewest descriptors (a probe's
    connection in flight is not a leak)."""
    if len(quiet) < 2 * MEASURE_WINDOW:
        return None
    first, last = quiet[:MEASURE_WINDOW], quiet[-MEASURE_WINDOW:]
    fewest_first, fewest_last = min(first, key=lambda s: s.fds), min(last, key=lambda s: s.fds)
    return Footprint(
        life,
        last[-1].at - first[0].at,
        int(statistics.median(s.rss_bytes for s in first)),
        int(statistics.median(s.rss_bytes for s in last)),
        fewest_first.fds,
        fewest_last.fds,
        fewest_first.fd_kinds,
        fewest_last.fd_kinds,
    )


def _cpu(record: Record, v: Verdict) -> None:
    """CPU while running: from each life's first sample after READY=1 to its last (start-up,
    about a second of imports per life, is left out: it says nothing about a long run)."""
    lives = {life.n: life for life in record.lives}
    spans: dict[int, list[ProcSample]] = {}
    for sample in record.proc:
        life = lives.get(sample.life)
        if life is not None and life.ready is not None and sample.at > life.ready:
            spans.setdefault(sample.life, []).append(sample)
    used = [(s[-1].cpu_s - s[0].cpu_s, s[-1].at - s[0].at) for s in spans.values() if len(s) > 1]
    v.cpu_s = sum(cpu for cpu, _ in used)
    seconds = sum(t for _, t in used)
    v.cpu_percent = 100 * v.cpu_s / seconds if seconds > 0 else 0.0
