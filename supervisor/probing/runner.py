"""The probe loops: each probe of each target on its own schedule, results to the model.

A joiner of the probing room: it builds the checks (adapters) for a config and runs them on
their pure schedules. What it needs from elsewhere comes in as callables, so it knows
nothing of the bus, the breaker or the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import urlsplit

import aiohttp

from supervisor.config import (
    Config,
    DiskProbe,
    ExecProbe,
    HeartbeatProbe,
    HttpProbe,
    LoadProbe,
    MemoryProbe,
    ProbeConfig,
    TargetConfig,
    TcpProbe,
    probe_ids,
)
from supervisor.model import ActiveState, Clock, ProbeResult, Status, UnitState
from supervisor.probing import hang, probes, stuck
from supervisor.probing.host import DiskCheck, LoadCheck, MemoryCheck
from supervisor.probing.process import ExecCheck
from supervisor.probing.schedule import ProbeSchedule, Timetable
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
    watch_port: int | None = None  # an http probe's port, whose owners /proc may prove stuck
    latency: stuck.Latencies = field(default_factory=stuck.Latencies)
    answered_at: float | None = None  # monotonic: its last good answer (a hang's evidence)


class ProcessReader(probes.ProcessTree, stuck.ListenerReader, Protocol):
    """/proc for the resources probe and for the evidence that a probe is stuck."""


@dataclass(frozen=True)
class ProbeContext:
    """What the probe loops use from the rest of the supervisor."""

    clock: Clock
    session: Callable[[], aiohttp.ClientSession]
    tls: probes.Tls  # the context https probes verify with
    reader: ProcessReader
    read_unit: Callable[[str], probes.ReadUnit]  # unit -> how to read its cgroup figures
    unit_state: Callable[[str], UnitState | None]
    paused: Callable[[], bool]  # the breaker is open: probe nothing
    observe: Callable[[ProbeResult], None]  # every result, for metrics
    wake: Callable[[], None]  # a result changed a status
    environ: Mapping[str, str] | None = None  # ours: what exec probes get of it (None: os's)
    # A probe failed hung: what it saw and /proc showed (told before its result is applied).
    hung: Callable[[str, hang.Hang], None] = lambda _target, _hang: None
    # A probe is overdue and /proc is being read for proof of a hang: that CPU is the job, as
    # a failure's handling is (`guard.activity`). Not counted, a hang whose detection took
    # over 10 s opened the breaker on "own CPU 4.9 %" and hid its repair for a minute.
    examining: Callable[[], None] = lambda: None


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
                track = ProbeTrack(
                    spec.failure_threshold, spec.success_threshold, grace_s=spec.startup_grace_s
                )
            model.add_probe(target.name, pid, spec.type, track)
            check = build(
                spec,
                clock=ctx.clock,
                session=ctx.session,
                tls=ctx.tls,
                read_unit=ctx.read_unit(target.unit or ""),  # host targets have no resources
                reader=ctx.reader,
                environ=ctx.environ,
            )
            # A random first offset so many targets' probes do not fire together.
            first = now + rng.uniform(0, spec.period_s)
            sched = ProbeSchedule(track, spec.period_s, spec.confirm_interval_s, first)
            port = _watch_port(spec) if target.unit else None
            runs.append(ProbeRun(target, pid, spec, check, sched, spec.timeout_s, port))
    return runs


def build(
    spec: ProbeConfig,
    *,
    clock: Clock,
    session: Callable[[], aiohttp.ClientSession],
    tls: probes.Tls,
    read_unit: probes.ReadUnit,
    reader: probes.ProcessTree,
    environ: Mapping[str, str] | None = None,
    proc: Path = Path("/proc"),
) -> probes.Check:
    """The check for a probe's config (`environ`: ours, what exec passes on of it)."""
    if isinstance(spec, HttpProbe):
        return probes.HttpCheck(spec, session, clock, tls=tls)
    if isinstance(spec, TcpProbe):
        return probes.TcpCheck(spec)
    if isinstance(spec, HeartbeatProbe):
        return probes.HeartbeatCheck(spec, clock)
    if isinstance(spec, ExecProbe):
        return ExecCheck(spec, os.environ if environ is None else environ)
    if isinstance(spec, DiskProbe):
        return DiskCheck(spec)
    if isinstance(spec, MemoryProbe):
        return MemoryCheck(spec, proc)
    if isinstance(spec, LoadProbe):
        return LoadCheck(spec, proc)
    return probes.ResourcesCheck(spec, read_unit, reader, clock)


def _watch_port(spec: ProbeConfig) -> int | None:
    """The port of an http probe's URL, if stuck evidence is on for it."""
    if not isinstance(spec, HttpProbe) or not spec.stuck_evidence:
        return None
    url = urlsplit(spec.url)
    try:
        return url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return None  # a port that is not a number: the probe itself will say so


def _allowed(ctx: ProbeContext, target: TargetConfig) -> bool:
    """Probe only active units (an inactive one is known bad) and only with the breaker shut."""
    if ctx.paused():
        return False
    if target.unit is None:
        return True  # the host is always there
    unit = ctx.unit_state(target.unit)
    return unit is not None and unit.active_state is ActiveState.ACTIVE


def _main_pid(ctx: ProbeContext, target: TargetConfig) -> int | None:
    """The unit's MainPID (None: unknown); 0 for a host target, which has no process."""
    if target.unit is None:
        return 0
    unit = ctx.unit_state(target.unit)
    return None if unit is None else unit.main_pid


def instant(run: ProbeRun) -> bool:
    """Its check never waits (and no hang watch reads /proc beside it): `drive` runs it."""
    return isinstance(run.check, probes.Instant) and run.watch_port is None


async def drive(runs: list[ProbeRun], model: HealthModel, ctx: ProbeContext) -> None:
    """Run instant probes from one timetable, forever: one timer for all of them, each asked
    in place (no task, no timeout), each on its own schedule."""
    clock, table = ctx.clock, Timetable[ProbeRun]()
    for run in runs:
        table.put(run, run.schedule.next_at, run.schedule.early_s)
    while (at := table.next_at()) is not None:
        await asyncio.sleep(max(0.0, at - clock.monotonic()))
        for run in table.due(clock.monotonic()):
            run_now(run, model, ctx)
            table.put(run, run.schedule.next_at, run.schedule.early_s)


def run_now(run: ProbeRun, model: HealthModel, ctx: ProbeContext) -> None:
    """One run of an instant probe, as `loop` runs any probe once."""
    started = ctx.clock.monotonic()
    if not _allowed(ctx, run.target):
        run.schedule.skipped(started)
        return
    before = _main_pid(ctx, run.target)
    check = cast(probes.Instant, run.check)  # `instant` chose it
    result = probes.run_now(run.target.name, run.probe, check, ctx.clock)
    _record(run, model, ctx, started=started, before=before, result=result)


async def loop(run: ProbeRun, model: HealthModel, ctx: ProbeContext) -> None:
    """Run one probe on its schedule, forever; results go to the model at once."""
    clock, sched, target = ctx.clock, run.schedule, run.target
    while True:
        await asyncio.sleep(max(0.0, sched.next_at - clock.monotonic()))
        started = clock.monotonic()
        if not _allowed(ctx, target):
            sched.skipped(started)
            continue
        before = _main_pid(ctx, target)
        result = await probe(run, ctx)
        _record(run, model, ctx, started=started, before=before, result=result)


def _record(
    run: ProbeRun,
    model: HealthModel,
    ctx: ProbeContext,
    *,
    started: float,
    before: int | None,
    result: ProbeResult,
) -> None:
    """A result to the metrics and the model, and the next run scheduled."""
    clock, sched = ctx.clock, run.schedule
    ctx.observe(result)
    after = _main_pid(ctx, run.target)
    if before is None or after is None or before != after:
        sched.skipped(clock.monotonic())  # about a process that is gone: discard
        return
    if result.status in (Status.PASS, Status.WARN):
        run.latency.answered(result.duration_s)
        run.answered_at = clock.monotonic()
    if model.apply_probe(result):
        ctx.wake()
    sched.ran(started, clock.monotonic())


async def probe(run: ProbeRun, ctx: ProbeContext) -> ProbeResult:
    """Run the probe; while it is overdue, read /proc for proof that its target is stuck.

    Proof of a stopped process ends the probe at once; proof of no progress over its whole
    timeout makes its timeout final. Without proof it is the plain probe, timeout and all.
    """
    clock = ctx.clock
    check = probes.run(run.target.name, run.probe, run.check, run.timeout_s, clock)
    unit = ctx.unit_state(run.target.unit) if run.target.unit else None
    if run.watch_port is None or unit is None or not unit.control_group:
        return await check
    cgroup, port = unit.control_group, run.watch_port
    started = clock.monotonic()
    task = asyncio.ensure_future(check)
    readings: list[stuck.Reading] = []
    at = started + run.latency.overdue_after(run.timeout_s)
    try:
        while not (await asyncio.wait({task}, timeout=max(0.0, at - clock.monotonic())))[0]:
            ctx.examining()
            readings.append(ctx.reader.listener(cgroup, port, clock.monotonic()))
            words = stuck.stopped(readings)
            if words is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                result = _stopped(run, words, clock.monotonic() - started)
                _tell_hang(run, ctx, result, readings, started)
                return result
            at += stuck.READ_EVERY_S
    finally:
        task.cancel()  # a no-op once done; stops the probe if we are cancelled
    result = task.result()
    if readings and result.status is Status.FAIL and result.duration_s >= run.timeout_s:
        readings.append(ctx.reader.listener(cgroup, port, clock.monotonic()))
        words = stuck.no_progress(readings, run.timeout_s) or stuck.stopped(readings)
        if words is not None:
            result = dataclasses.replace(result, output=f"{result.output}; {words}", stuck=True)
        _tell_hang(run, ctx, result, readings, started)
    return result


def _tell_hang(
    run: ProbeRun,
    ctx: ProbeContext,
    result: ProbeResult,
    readings: list[stuck.Reading],
    started: float,
) -> None:
    """What the failing probe saw and /proc showed, to whoever keeps a hang's evidence."""
    ago = None if run.answered_at is None else started - run.answered_at
    saw = hang.ProbeSaw(result.kind, result.duration_s, run.timeout_s, ago, run.latency.usual())
    ctx.hung(run.target.name, hang.explain(saw, readings))


def _stopped(run: ProbeRun, words: str, took: float) -> ProbeResult:
    """The final failure of a probe ended early: its target's process is stopped."""
    kind = run.check.kind
    output = f"{kind}: no answer after {took:.1f} s; {words}"
    return ProbeResult(run.target.name, run.probe, kind, Status.FAIL, output, took, stuck=True)
