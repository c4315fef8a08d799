"""The probe loops: each probe of each target on its own schedule, results to the model.

A joiner of the probing room: it builds the checks (adapters) for a config and runs them on
their pure schedules. What it needs from elsewhere comes in as callables, so it knows
nothing of the bus, the breaker or the daemon.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp

from supervisor.config import Config, ProbeConfig, TargetConfig, probe_ids
from supervisor.model import ActiveState, Clock, ProbeResult, UnitState
from supervisor.probing import probes
from supervisor.probing.schedule import ProbeSchedule
from supervisor.watch.health import HealthModel, ProbeTrack


@dataclass
class ProbeRun:
    """One probe of one target, with its schedule."""

    target: TargetConfig
    probe: str
    spec: ProbeConfig
    check: probes.Check
    schedule: ProbeSchedule
    timeout_s: float


@dataclass(frozen=True)
class ProbeContext:
    """What the probe loops use from the rest of the supervisor."""

    clock: Clock
    session: Callable[[], aiohttp.ClientSession]
    reader: probes.ProcessTree
    read_unit: Callable[[str], probes.ReadUnit]  # unit -> how to read its cgroup figures
    unit_state: Callable[[str], UnitState | None]
    paused: Callable[[], bool]  # the breaker is open: probe nothing
    observe: Callable[[ProbeResult], None]  # every result, for metrics
    wake: Callable[[], None]  # a result changed a status


def plan(
    config: Config,
    model: HealthModel,
    ctx: ProbeContext,
    rng: random.Random,
    previous: Iterable[ProbeRun] = (),
) -> list[ProbeRun]:
    """A run per probe, registered with the model; first runs spread over one period.

    A probe whose target unit and settings are unchanged since `previous` (a reload) keeps
    its track: its counts of failures and its last result carry over.
    """
    kept = {(r.target.name, r.target.unit, r.probe): r for r in previous}
    runs = []
    now = ctx.clock.monotonic()
    for target in config.targets:
        for pid, spec in zip(probe_ids(target), target.probes, strict=True):
            old = kept.get((target.name, target.unit, pid))
            if old is not None and old.spec == spec:
                track = old.schedule.track
            else:
                track = ProbeTrack(spec.failure_threshold, spec.success_threshold)
            model.add_probe(target.name, pid, spec.type, track)
            check = probes.build(
                spec,
                clock=ctx.clock,
                session=ctx.session,
                read_unit=ctx.read_unit(target.unit),
                reader=ctx.reader,
            )
            # A random first offset so many targets' probes do not fire together.
            first = now + rng.uniform(0, spec.period_s)
            sched = ProbeSchedule(track, spec.period_s, spec.confirm_interval_s, first)
            runs.append(ProbeRun(target, pid, spec, check, sched, spec.timeout_s))
    return runs


def _allowed(ctx: ProbeContext, target: TargetConfig) -> bool:
    """Probe only active units (an inactive one is known bad) and only with the breaker shut."""
    if ctx.paused():
        return False
    unit = ctx.unit_state(target.unit)
    return unit is not None and unit.active_state is ActiveState.ACTIVE


async def loop(run: ProbeRun, model: HealthModel, ctx: ProbeContext) -> None:
    """Run one probe on its schedule, forever; results go to the model at once."""
    clock, sched, target = ctx.clock, run.schedule, run.target
    while True:
        await asyncio.sleep(max(0.0, sched.next_at - clock.monotonic()))
        started = clock.monotonic()
        if not _allowed(ctx, target):
            sched.skipped(started)
            continue
        before = ctx.unit_state(target.unit)
        result = await probes.run(target.name, run.probe, run.check, run.timeout_s, clock)
        ctx.observe(result)
        after = ctx.unit_state(target.unit)
        if before is None or after is None or before.main_pid != after.main_pid:
            sched.skipped(clock.monotonic())  # about a process that is gone: discard
            continue
        if model.apply_probe(result):
            ctx.wake()
        sched.ran(started, clock.monotonic())
