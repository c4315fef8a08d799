"""The faults a chaos run can inject, and the seeded plan of which to inject when. Pure.

The plan fixes everything a seed decides: the order of the faults, their kinds, targets,
how long each cause is held and which variant is used. When a fault starts can still move a
little at run time (a target takes one fault at a time; see `devtools.chaos.run`), so the
same seed gives the same faults in the same order on every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

TARGETS = ("trader", "dashboard", "position-monitor")
HEARTBEAT_TARGETS = ("trader", "position-monitor")


class Kind(StrEnum):
    """A fault the run injects."""

    KILL = "kill-9"  # SIGKILL of a unit's main process
    SIGSTOP = "sigstop"  # the unit's main process stopped: alive, does nothing
    HANG = "hang"  # the demo program's own hang (the dashboard keeps its port open)
    STALL = "stall"  # the heartbeat file is no longer written
    MEMORY = "memory"  # resident memory grows past the resources probe's limit
    CRASH_LOOP = "crash-loop"  # every start exits 1 at once, for a while
    ORPHAN = "orphan"  # the dashboard dies and a stray process takes its port
    BUS_KILL = "bus-kill"  # SIGKILL of the session bus (dbus-daemon)
    REEXEC = "daemon-reexec"  # systemctl --user daemon-reexec
    RELOAD = "sighup"  # SIGHUP to the supervisor (config reload)
    SUPERVISOR_KILL = "supervisor-kill"  # SIGKILL of the supervisor; the run restarts it
    LOAD = "http-load"  # a burst of GET /health and /metrics
    TELEGRAM_DOWN = "telegram-down"  # the Bot API does not answer at all
    TELEGRAM_429 = "telegram-429"  # the Bot API answers 429 with retry_after


class Scope(StrEnum):
    """What a fault occupies: faults of one scope (or one target) never overlap."""

    TARGET = "target"
    SUPERVISOR = "supervisor"
    LOAD = "load"
    TELEGRAM = "telegram"


@dataclass(frozen=True)
class KindSpec:
    """How a kind of fault is planned and judged."""

    targets: tuple[str, ...]  # the targets it can hit (none: it is not about one target)
    scope: Scope
    detect: bool  # the supervisor must notice it
    repair: bool  # recovery applies: it must be repaired
    hold_s: tuple[float, float] = (0.0, 0.0)  # how long its cause is kept (0: instant)
    weight: int = 1
    scaled: bool = True  # the short run holds its cause for less time


SPECS: dict[Kind, KindSpec] = {
    Kind.KILL: KindSpec(TARGETS, Scope.TARGET, True, True, weight=4),
    Kind.SIGSTOP: KindSpec(TARGETS, Scope.TARGET, True, True, weight=2),
    Kind.HANG: KindSpec(TARGETS, Scope.TARGET, True, True, weight=2),
    Kind.STALL: KindSpec(HEARTBEAT_TARGETS, Scope.TARGET, True, True, weight=2),
    Kind.MEMORY: KindSpec(TARGETS, Scope.TARGET, True, True, weight=2),
    # Long enough for recovery to give up (4 attempts, backoff 0, 2, 5 s): an alert is due.
    Kind.CRASH_LOOP: KindSpec(TARGETS, Scope.TARGET, True, True, (15.0, 30.0), scaled=False),
    Kind.ORPHAN: KindSpec(("dashboard",), Scope.TARGET, True, True),
    Kind.BUS_KILL: KindSpec((), Scope.SUPERVISOR, True, True),
    Kind.REEXEC: KindSpec((), Scope.SUPERVISOR, True, False),
    Kind.RELOAD: KindSpec((), Scope.SUPERVISOR, True, False, weight=2),
    Kind.SUPERVISOR_KILL: KindSpec((), Scope.SUPERVISOR, False, True),
    Kind.LOAD: KindSpec((), Scope.LOAD, False, False, (5.0, 15.0)),
    Kind.TELEGRAM_DOWN: KindSpec((), Scope.TELEGRAM, False, True, (10.0, 40.0)),
    Kind.TELEGRAM_429: KindSpec((), Scope.TELEGRAM, False, True),
}
# The short run (the test suite's): fewer kinds, chosen to overlap in two minutes.
SHORT_KINDS = (
    Kind.KILL,
    Kind.SIGSTOP,
    Kind.HANG,
    Kind.STALL,
    Kind.CRASH_LOOP,
    Kind.RELOAD,
    Kind.REEXEC,
    Kind.SUPERVISOR_KILL,
    Kind.LOAD,
    Kind.TELEGRAM_DOWN,
)
# The soak's (issue 21): kill -9 of trader and position-monitor, a hung dashboard.
SOAK_PAIRS = ((Kind.KILL, "trader"), (Kind.KILL, "position-monitor"), (Kind.HANG, "dashboard"))
# Faults that certainly make the supervisor send something (a "supervisor restarted" notice;
# an incident once recovery gives up): what a Telegram fault is paired with, so that
# something is waiting to be delivered while Telegram is away.
ALERTING = (Kind.SUPERVISOR_KILL, Kind.CRASH_LOOP)


@dataclass(frozen=True)
class Planned:
    """One fault of the plan."""

    n: int  # its number, in plan order (from 1; 0 is the run's warm-up fault)
    at_s: float  # seconds after the chaos phase began, at the earliest
    kind: Kind
    target: str | None
    hold_s: float = 0.0
    variant: int = 0  # a seeded choice the injector uses (e.g. which config to reload)
    follows: int | None = None  # planned right after this fault, to hit it while it lasts


@dataclass(frozen=True)
class Shape:
    """How dense a plan is."""

    seconds: float  # the chaos phase: no fault is planned after it
    gap_s: tuple[float, float]  # between one planned fault and the next
    kinds: tuple[Kind, ...]
    hold_scale: float = 1.0  # the short run holds causes for less time
    # The soak's faults: each a kind and its target, drawn evenly (then `kinds` is unused).
    pairs: tuple[tuple[Kind, str], ...] = ()


def make_plan(seed: int, shape: Shape) -> list[Planned]:
    """The faults for `seed`: the same seed and shape always give the same list."""
    rng = random.Random(seed)
    plan: list[Planned] = []
    kinds = list(shape.kinds)
    weights = [SPECS[k].weight for k in kinds]
    at = rng.uniform(0.5, 2.0)
    while at < shape.seconds:
        if shape.pairs:
            kind, target = rng.choice(shape.pairs)
            plan.append(_planned(rng, len(plan) + 1, at, kind, shape, target=target))
            at += rng.uniform(*shape.gap_s)
            continue
        kind = rng.choices(kinds, weights)[0]
        first = _planned(rng, len(plan) + 1, at, kind, shape)
        plan.append(first)
        plan.extend(_companions(rng, first, len(plan) + 1, shape))
        at += rng.uniform(*shape.gap_s)
    return plan


def _planned(
    rng: random.Random,
    n: int,
    at: float,
    kind: Kind,
    shape: Shape,
    *,
    follows: int | None = None,
    target: str | None = None,
) -> Planned:
    spec = SPECS[kind]
    if target is None and spec.targets:
        target = rng.choice(spec.targets)
    low, high = spec.hold_s
    scale = shape.hold_scale if spec.scaled else 1.0
    hold = round(rng.uniform(low, high) * scale, 1) if high else 0.0
    return Planned(n, round(at, 2), kind, target, hold, rng.randrange(1000), follows)


def _companions(rng: random.Random, first: Planned, n: int, shape: Shape) -> list[Planned]:
    """Faults planned to overlap `first`, where the overlap is the point of the exercise."""
    kind = first.kind
    if kind in (Kind.TELEGRAM_DOWN, Kind.TELEGRAM_429):
        # Something must be waiting to be sent while Telegram is away or answering 429.
        alerting = [k for k in ALERTING if k in shape.kinds] or [Kind.SUPERVISOR_KILL]
        return [_planned(rng, n, first.at_s + 1.0, rng.choice(alerting), shape, follows=first.n)]
    if kind in (Kind.REEXEC, Kind.BUS_KILL):
        # After a new bus name or a new bus, a dead unit must still be seen and restarted.
        return [_planned(rng, n, first.at_s + 2.0, Kind.KILL, shape, follows=first.n)]
    if kind is Kind.SUPERVISOR_KILL and rng.random() < 0.5:
        # A unit that dies while the supervisor is down must be found when it is back.
        return [_planned(rng, n, first.at_s + 0.5, Kind.KILL, shape, follows=first.n)]
    return []
