"""The checks of a chaos run, from its `Record` alone. Pure: the same record, the same verdict."""

from __future__ import annotations

import bisect
import itertools
import re
import statistics
from dataclasses import dataclass, field

from devtools.bench.stats import max_gap
from devtools.chaos.alerts import judge_alerts
from devtools.chaos.plan import SPECS, Kind
from devtools.chaos.record import Fault, HealthSample, Life, ProcSample, Record

HEALTH_LIMIT_S = 0.100  # /health must answer within this while the supervisor runs
SATURATED = 95.0  # host CPU busy %: a nice-10 process then waits for a core
KILL_MARGIN_S = 0.5  # a request sent just before the run kills the supervisor may be cut
RSS_DRIFT_LIMIT = 2 * 2**20
RESTART_SLACK_S = 1.0  # a restart this long after a fault ended still belongs to it
MEASURE_WINDOW = 5  # footprint: samples taken together at each end
STATE_LAG_SAMPLES = 10  # seconds the state file may lag /metrics (the writer coalesces)
_GIVE_UP = re.compile(r"giving up on (?P<target>\S+) \(.*?\): (?P<n>\d+) attempts")


@dataclass(frozen=True)
class Check:
    """One line of the verdict."""

    name: str
    ok: bool
    detail: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class KindRow:
    """Per kind: how many, how many detected and repaired, and how fast."""

    kind: Kind
    injected: int
    skipped: int
    detected: str  # "5/5" or "-" where detection is not asked of the supervisor
    repaired: str
    detect_s: list[float]
    repair_s: list[float]


@dataclass(frozen=True)
class Footprint:
    """One life's RSS and descriptors, first and last measured."""

    life: int
    span_s: float
    rss_start: int
    rss_end: int
    fds_start: int
    fds_end: int
    kinds_start: str = ""  # what the descriptors were, at each end
    kinds_end: str = ""


@dataclass
class Verdict:
    """Everything the report prints."""

    kinds: list[KindRow] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    footprints: list[Footprint] = field(default_factory=list)
    cpu_percent: float = 0.0
    cpu_s: float = 0.0
    health: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)


def judge(record: Record) -> Verdict:
    """Every check, and the figures the table shows."""
    v = Verdict(kinds=_kinds(record))
    injected = [f for f in record.faults if f.start is not None]
    v.checks.append(_detected(injected))
    v.checks.append(_repaired(injected))
    v.checks.append(_false_restarts(record))
    v.checks.append(_give_ups(record))
    v.checks += _alert_checks(record)
    v.checks.append(_health(record, v))
    v.checks.append(_watchdog(record))
    v.checks.append(_footprint(record, v))
    v.checks.append(_own_serving(record))
    v.checks.append(_state_file(record))
    v.checks.append(_log(record))
    v.checks.append(_run(record))
    return v


def _kinds(record: Record) -> list[KindRow]:
    rows = []
    for kind, spec in SPECS.items():
        faults = [f for f in record.faults if f.kind is kind]
        if not faults:
            continue
        done = [f for f in faults if f.start is not None]
        detected = [f for f in done if f.detected is not None]
        repaired = [f for f in done if f.repaired is not None]
        rows.append(
            KindRow(
                kind,
                len(done),
                len(faults) - len(done),
                f"{len(detected)}/{len(done)}" if spec.detect else "-",
                f"{len(repaired)}/{len(done)}" if spec.repair else "-",
                [f.detected - f.start for f in detected if f.start is not None and f.detected],
                [_repair_time(f) for f in repaired],
            )
        )
    return rows


def _repair_time(fault: Fault) -> float:
    """From the start, or from when its held cause was taken away (nothing to repair before)."""
    assert fault.start is not None and fault.repaired is not None
    held = fault.plan.hold_s > 0 or fault.kind is Kind.TELEGRAM_429
    since = fault.lifted if held and fault.lifted is not None else fault.start
    return max(0.0, fault.repaired - since)


def _name(fault: Fault) -> str:
    return f"fault {fault.plan.n} {fault.kind}{' ' + fault.target if fault.target else ''}"


def _detected(faults: list[Fault]) -> Check:
    missed = [_name(f) for f in faults if SPECS[f.kind].detect and f.detected is None]
    asked = sum(1 for f in faults if SPECS[f.kind].detect)
    return Check(
        "every fault detected", not missed, f"{asked - len(missed)}/{asked}", tuple(missed)
    )


def _repaired(faults: list[Fault]) -> Check:
    missed = [
        f"{_name(f)}: {'; '.join(f.notes) or 'not repaired'}"
        for f in faults
        if SPECS[f.kind].repair and f.repaired is None
    ]
    asked = sum(1 for f in faults if SPECS[f.kind].repair)
    return Check(
        "every fault repaired", not missed, f"{asked - len(missed)}/{asked}", tuple(missed)
    )


def _false_restarts(record: Record) -> Check:
    """A unit restarted (new main process, or a recovery action) with no fault on it."""
    problems = []
    for inc in record.incarnations:
        if inc.started < record.began or (record.finished and inc.started > record.finished):
            continue
        if not any(
            f.target == inc.target and f.active(inc.started, RESTART_SLACK_S) for f in record.faults
        ):
            problems.append(f"{inc.target}: new main process {inc.pid} at {_clock(inc.started)}")
    for act in record.actions:
        if act.action == "give-up":
            continue
        if not any(
            _overlaps(f, act.since, act.at) for f in record.faults if f.target == act.target
        ):
            problems.append(
                f"{act.target}: {act.action} ({act.result}) between {_clock(act.since)} "
                f"and {_clock(act.at)}"
            )
    systemd = {t: n for t, n in record.n_restarts.items() if n}
    if systemd:
        problems.append(f"systemd restarted units by itself (NRestarts): {systemd}")
    return Check("false restarts: 0", not problems, str(len(problems)), tuple(problems))


def _give_ups(record: Record) -> Check:
    """Recovery gives up only after max_attempts, or after its slow retry of the same fault.

    A give-up after fewer attempts, first in a fault, means the policy was still in its
    slow-retry mode from an earlier incident: the unit was left down without a try.
    """
    events = [e for e in record.log if e.what == "give-up"]
    problems = []
    for event in events:
        found = _GIVE_UP.search(event.line)
        if found is None or int(found["n"]) >= record.max_attempts:
            continue
        target = found["target"]
        fault = next((f for f in record.faults if f.target == target and f.active(event.at)), None)
        if fault is None or fault.start is None:
            continue
        start = fault.start
        earlier = [e for e in events if f"on {target} " in e.line and start <= e.at < event.at]
        if not earlier:
            problems.append(
                f"{target}: gave up after {found['n']} attempt(s) at {_clock(event.at)}, the "
                f"first try at fault {fault.plan.n} ({fault.kind}, {_clock(start)})"
            )
    detail = f"{len(events)} give-ups"
    return Check("recovery tried before giving up", not problems, detail, tuple(problems))


def _overlaps(fault: Fault, since: float, at: float) -> bool:
    if fault.start is None:
        return False
    end = fault.ended if fault.ended is not None else float("inf")
    return fault.start - RESTART_SLACK_S <= at and since <= end + RESTART_SLACK_S


def _alert_checks(record: Record) -> list[Check]:
    found = judge_alerts(record)
    n = sum(1 for i in found.incidents if i.chat == record.chats[0]) if record.chats else 0
    kills = len(record.lives) - 1  # every life but the last ended without a clean stop
    wrong = {c: k for c, k in found.restart_notices.items() if k != kills}
    notices = [
        f"chat {c}: {k} 'supervisor restarted' notices for {kills} kills" for c, k in wrong.items()
    ]
    return [
        Check(
            "alerts: one alert + one resolved per incident",
            not found.per_incident,
            f"{n} incidents",
            tuple(found.per_incident),
        ),
        Check("alerts: none lost", not found.lost, str(len(found.lost)), tuple(found.lost)),
        Check(
            "alerts: none duplicated",
            not found.duplicated,
            str(len(found.duplicated)),
            tuple(found.duplicated),
        ),
        Check(
            "alerts: none false",
            not found.false,
            str(len(found.false)),
            tuple(found.false + found.other),
        ),
        Check(
            "alerts: one 'supervisor restarted' per kill",
            not notices,
            f"{kills} kills",
            tuple(notices),
        ),
    ]


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


def _health(record: Record, v: Verdict) -> Check:
    windows = _up_windows(record.lives)
    end = record.finished or float("inf")
    up = [s for s in record.health if any(a <= s.at <= b for a, b in windows) and s.at <= end]
    times = sorted(s.latency_s for s in up if s.latency_s is not None)
    if times:
        v.health = {
            "n": len(up),
            "p50_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
            "max_ms": 1000 * times[-1],
        }
    late = [s for s in up if not _in_time(s)]
    # Nice=10 on a host whose CPU is all taken: waiting for a core is not the supervisor's
    # doing. Such answers are counted apart, and the run says so.
    busy = [s for s in late if s.latency_s is not None and _host_cpu(record, s.at) >= SATURATED]
    slow = [s for s in late if s not in busy]
    loads = [f for f in record.faults if f.kind is Kind.LOAD and f.start is not None]
    during = [s for s in slow if any(f.active(s.at) for f in loads)]
    problems = [
        f"{_clock(s.at)}: {_answer(s)}{' (HTTP burst)' if s in during else ''}" for s in slow
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


def _in_time(sample: HealthSample) -> bool:
    """Answered in time with a health document (or 429: throttled, which is an answer)."""
    latency = sample.latency_s
    return latency is not None and latency <= HEALTH_LIMIT_S and sample.code in (200, 503, 429)


def _answer(sample: HealthSample) -> str:
    if sample.latency_s is None:
        return "no answer"
    return f"HTTP {sample.code} in {1000 * sample.latency_s:.0f} ms"


def _watchdog(record: Record) -> Check:
    gaps = []
    for life in record.lives:
        if life.ready is None:
            continue
        end = life.exited if life.exited is not None else max([life.ready, *life.watchdog])
        gaps.append((max_gap([life.ready, *life.watchdog], life.ready, end), life.n))
    worst = max(gaps, default=(0.0, 0))
    late = [f"life {n}: {g:.1f} s without WATCHDOG=1" for g, n in gaps if g > record.watchdog_s]
    return Check("watchdog pinged in time", not late, f"longest gap {worst[0]:.1f} s", tuple(late))


def _footprint(record: Record, v: Verdict) -> Check:
    """RSS and descriptors within the longest measured life (one process: a leak shows there),
    and from the first quiet moment after warm-up to the last one (the run, whichever life
    answers at each end: shown, and judged only when no life could be measured, since two
    processes can differ by a keep-alive connection each happens to hold)."""
    name = "footprint drift (RSS < 2 MiB, descriptors 0)"
    lives = [fp for life in record.lives if (fp := _life_footprint(record, life)) is not None]
    _cpu(record, v)
    warm = max((f.repaired for f in record.faults if f.repaired and f.plan.n == 0), default=0.0)
    run = _measure(0, [s for s in record.proc if s.quiet and s.at > warm])
    longest = max(lives, key=lambda f: f.span_s, default=None)
    v.footprints = [fp for fp in (run, longest) if fp is not None]
    judged = longest or run
    if judged is None:
        # The short run kills the supervisor often and overlaps faults densely: it may never
        # be quiet twice. A long run must be.
        return Check(name, record.short, "not measured: never quiet twice after warm-up")
    rss, fds = judged.rss_end - judged.rss_start, judged.fds_end - judged.fds_start
    problems = []
    if rss >= RSS_DRIFT_LIMIT or fds > 0:
        kinds = f"({judged.kinds_start} -> {judged.kinds_end})"
        problems.append(f"{_whose(judged)}: RSS {_mib(judged)}, descriptors {fds:+d} {kinds}")
    detail = "; ".join(
        f"{_whose(fp)} over {fp.span_s:.0f} s: RSS {_mib(fp)}, "
        f"descriptors {fp.fds_end - fp.fds_start:+d}{'' if fp is judged else ' (shown)'}"
        for fp in v.footprints
    )
    return Check(name, not problems, detail, tuple(problems))


def _whose(fp: Footprint) -> str:
    return "the run" if fp.life == 0 else f"life {fp.life}"


def _mib(fp: Footprint) -> str:
    return f"{(fp.rss_end - fp.rss_start) / 2**20:+.2f} MiB"


def _life_footprint(record: Record, life: Life) -> Footprint | None:
    """From the first quiet samples after the life repaired a fault, to its last quiet ones."""
    if life.ready is None:
        return None
    repairs = [
        f.repaired
        for f in record.faults
        if f.repaired and f.target and f.start and f.start >= life.ready
    ]
    if not repairs:
        return None
    warm = min(repairs)
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


def _state_file(record: Record) -> Check:
    """The state file must keep up with the outbox: what it still lists as waiting after
    delivery is sent again by the next life after a kill (a duplicate)."""
    problems, behind = [], 0
    for before, sample in itertools.pairwise(record.proc):
        same = before.life == sample.life and None not in (sample.waiting, sample.waiting_in_file)
        behind = behind + 1 if same and sample.waiting != sample.waiting_in_file else 0
        if behind == STATE_LAG_SAMPLES:
            problems.append(
                f"life {sample.life} from {_clock(sample.at - STATE_LAG_SAMPLES)}: the file lists "
                f"{sample.waiting_in_file} waiting, /metrics says {sample.waiting}"
            )
    return Check(
        "state file keeps up with the outbox", not problems, str(len(problems)), tuple(problems)
    )


def _own_serving(record: Record) -> Check:
    """Issue 11: serving HTTP must never pause probing (the breaker opening on our own CPU)."""
    loads = [f for f in record.faults if f.kind is Kind.LOAD and f.start is not None]
    paused = [
        s
        for s in record.health
        if "breaker open: own CPU" in s.notes and any(f.active(s.at, 15.0) for f in loads)
    ]
    problems = tuple(f"{_clock(s.at)}: {s.notes}" for s in paused[:5])
    detail = f"{len(loads)} bursts, {sum(r.requests for r in record.loads)} requests"
    return Check("probes never paused by our own serving", not paused, detail, problems)


def _log(record: Record) -> Check:
    tracebacks = [e for e in record.log if e.what == "traceback"]
    return Check("no traceback in the supervisor's log", not tracebacks, str(len(tracebacks)))


def _run(record: Record) -> Check:
    return Check(
        "the run itself: no errors",
        not record.errors,
        str(len(record.errors)),
        tuple(record.errors),
    )


def _clock(at: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 10)}"
