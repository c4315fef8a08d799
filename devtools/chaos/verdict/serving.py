"""The checks on serving: /health answered in time while up, the watchdog pinged in time, and
probing never paused by the supervisor's own HTTP serving. Pure."""

from __future__ import annotations

import bisect
import statistics

from devtools.bench.stats import max_gap
from devtools.chaos.plan import Kind
from devtools.chaos.record import Fault, HealthSample, Life, Record
from devtools.chaos.verdict.parts import Check, Verdict, clock
from supervisor.guard.activity import HANDLING_S

HEALTH_LIMIT_S = 0.100  # /health must answer within this while the supervisor runs
SATURATED = 95.0  # host CPU busy %: a nice-10 process then waits for a core
KILL_MARGIN_S = 0.5  # a request sent just before the run kills the supervisor may be cut


def _up_windows(lives: list[Life]) -> list[tuple[float, float]]:
    windows = []
    for life in lives:
        if life.ready is None:
            continue
        end = life.exited if life.exited is not None else float("inf")
        if life.killed:
            end -= KILL_MARGIN_S
        windows.append((life.ready, end))
    return windows


def _while_up(record: Record) -> list[HealthSample]:
    windows = _up_windows(record.lives)
    end = record.finished or float("inf")
    return [s for s in record.health if any(a <= s.at <= b for a, b in windows) and s.at <= end]


def _bursts(record: Record) -> list[Fault]:
    return [f for f in record.faults if f.kind is Kind.LOAD and f.start is not None]


def answered(record: Record) -> Check:
    """Every request while up got a health document: never refused, never timed out."""
    up, loads = _while_up(record), _bursts(record)
    lost = [s for s in up if not _answered(s, any(f.active(s.at) for f in loads))]
    problems = tuple(f"{clock(s.at)}: {_answer(s)}" for s in lost)
    detail = f"{len(up) - len(lost)}/{len(up)} answered"
    return Check("/health answered while up", not lost and bool(up), detail, problems)


def health(record: Record, v: Verdict) -> Check:
    """How fast: a timing target, measured here and judged by the run (never in a test)."""
    up, loads = _while_up(record), _bursts(record)
    times = sorted(s.latency_s for s in up if s.latency_s is not None)
    if times:
        v.health = {
            "n": len(up),
            "p50_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
            "max_ms": 1000 * times[-1],
        }
    late = [s for s in up if not _in_time(s, any(f.active(s.at) for f in loads))]
    # Nice=10 on a host whose CPU is all taken: waiting for a core is not the supervisor's
    # doing. Such answers are counted apart, and the run says so.
    busy = [s for s in late if s.latency_s is not None and _host_cpu(record, s.at) >= SATURATED]
    slow = [s for s in late if s not in busy]
    during = [s for s in slow if any(f.active(s.at) for f in loads)]
    problems = [
        f"{clock(s.at)}: {_answer(s)}{' (HTTP burst)' if s in during else ''}" for s in slow
    ]
    detail = f"{len(up) - len(late)}/{len(up)} in time"
    if slow:
        detail += f"; {len(during)} of the {len(slow)} late during an HTTP burst"
    if busy:
        detail += f", {len(busy)} late while the host CPU was at {SATURATED:g}%+ (not counted)"
    name = f"/health within {HEALTH_LIMIT_S * 1000:.0f} ms while up"
    return Check(name, not slow and bool(up), detail, tuple(problems))


def _host_cpu(record: Record, at: float) -> float:
    """The host's CPU busy % over the samples around `at` (the busier of the two)."""
    after = bisect.bisect_left(record.host_cpu, (at, -1.0))
    near = record.host_cpu[max(0, after - 1) : after + 1]
    return max((cpu for _t, cpu in near), default=0.0)


def _answered(sample: HealthSample, burst: bool) -> bool:
    """Answered with a health document; a 429 only during an HTTP burst (throttled by design
    then: the run's own poller is one of more than 10 requests a second)."""
    codes = (200, 503, 429) if burst else (200, 503)
    return sample.latency_s is not None and sample.code in codes


def _in_time(sample: HealthSample, burst: bool) -> bool:
    """Answered (as above) within the limit."""
    latency = sample.latency_s
    return _answered(sample, burst) and latency is not None and latency <= HEALTH_LIMIT_S


def _answer(sample: HealthSample) -> str:
    if sample.latency_s is None:
        return "no answer"
    return f"HTTP {sample.code} in {1000 * sample.latency_s:.0f} ms"


def watchdog(record: Record) -> Check:
    gaps = []
    for life in record.lives:
        if life.ready is None:
            continue
        end = life.exited if life.exited is not None else max([life.ready, *life.watchdog])
        gaps.append((max_gap([life.ready, *life.watchdog], life.ready, end), life.n))
    worst = max(gaps, default=(0.0, 0))
    late = [f"life {n}: {g:.1f} s without WATCHDOG=1" for g, n in gaps if g > record.watchdog_s]
    return Check("watchdog pinged in time", not late, f"longest gap {worst[0]:.1f} s", tuple(late))


def own_cpu(record: Record) -> Check:
    """Probes never paused for our own CPU while faults were under way, within 30 s after one
    (handling failures is the job: `guard.activity`) or near an HTTP burst (serving is
    throttled, issue 11). In the quiet after the last fault the budget applies as configured;
    a pause then (the run's own pollers ask 11 times a second) is shown, not failed."""
    loads = [f for f in record.faults if f.kind is Kind.LOAD and f.start is not None]
    faults = [f for f in record.faults if f.start is not None]
    paused = [s for s in record.health if "breaker open: own CPU" in s.notes]
    burst = [s for s in paused if any(f.active(s.at, 15.0) for f in loads)]
    busy = [s for s in paused if s in burst or any(_handled(f, s.at) for f in faults)]
    problems = tuple(
        f"{clock(s.at)}: {s.notes}{' (HTTP burst)' if s in burst else ''}" for s in busy[:5]
    )
    detail = f"{len(loads)} bursts, {sum(r.requests for r in record.loads)} requests"
    if busy:
        detail += f"; {len(busy)} samples paused, {len(burst)} of them near a burst"
    if len(paused) > len(busy):
        detail += f"; {len(paused) - len(busy)} paused in the quiet after the faults (shown)"
    return Check("probes never paused by our own CPU", not busy, detail, problems)


def _handled(fault: Fault, at: float) -> bool:
    """Within a fault, or within HANDLING_S after it ended (the supervisor's own window)."""
    return fault.start is not None and fault.start <= at <= (fault.ended or at) + HANDLING_S
