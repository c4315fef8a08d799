"""Instant probes (heartbeat, host memory and load) asked in place by `runner.run_now`, on an
injected clock: the result, the model and the schedule as the probe's own loop gave them."""

from __future__ import annotations

import os
import random
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from supervisor.config import MemoryProbe, parse
from supervisor.model import ActiveState, ProbeResult, Status, UnitResources, UnitState
from supervisor.probing import probes, runner
from supervisor.probing.host import MemoryCheck
from supervisor.runtime import tls
from supervisor.watch.health import HealthModel, TargetSpec
from tests.clock import FakeClock


@dataclass
class World:
    """What the runner reads of the rest of the supervisor, set by the test."""

    unit: UnitState | None = field(
        default_factory=lambda: UnitState(
            "app.service", active_state=ActiveState.ACTIVE, main_pid=7
        )
    )
    paused: bool = False
    seen: list[ProbeResult] = field(default_factory=list)
    clock: FakeClock = field(default_factory=FakeClock)

    def context(self) -> runner.ProbeContext:
        return runner.ProbeContext(
            clock=self.clock,
            session=unused,  # type: ignore[arg-type]
            tls=tls.client,
            reader=unused,  # type: ignore[arg-type]
            read_unit=lambda _unit: no_resources,
            unit_state=lambda _name: self.unit,
            paused=lambda: self.paused,
            observe=self.seen.append,
            wake=lambda: None,
        )


def unused() -> None:
    raise AssertionError("an instant probe reads nothing but its file")


async def no_resources() -> UnitResources:
    raise AssertionError("no resources probe here")


def setup(tmp_path: Path, probe: str, world: World) -> tuple[runner.ProbeRun, HealthModel]:
    text = (
        f'state_dir = "{tmp_path}"\n[[targets]]\nname = "app"\nunit = "app.service"\n'
        f"[[targets.probes]]\n{probe}"
    )
    model = HealthModel([TargetSpec("app", "app.service")], world.clock)
    config = parse(tomllib.loads(text), env={})
    (run,) = runner.plan(config, model, world.context(), random.Random(1))
    if world.unit is not None:
        model.apply_unit("app", world.unit)
    return run, model


def heartbeat(tmp_path: Path, age_s: float, clock: FakeClock) -> str:
    beat = tmp_path / "beat"
    beat.write_text("")
    os.utime(beat, (clock.time() - age_s, clock.time() - age_s))
    return f'type = "heartbeat"\npath = "{beat}"\nmax_age_s = 15\n'


def test_only_checks_that_never_wait_are_instant(tmp_path: Path) -> None:
    world = World()
    clock = world.clock
    kinds = {
        heartbeat(tmp_path, 1, clock): True,
        'type = "memory"\n': True,
        'type = "load"\n': True,
        'type = "disk"\npath = "/"\n': False,  # statvfs runs in a thread: it may hang
        'type = "tcp"\nport = 1\n': False,
        'type = "http"\nurl = "http://127.0.0.1:1/"\n': False,
        'type = "exec"\ncommand = ["/bin/true"]\n': False,
    }
    for probe, instant in kinds.items():
        run, _model = setup(tmp_path, probe, world)
        assert runner.instant(run) is instant, probe


def test_a_fresh_heartbeat_passes_and_runs_again_a_period_after_it_started(
    tmp_path: Path,
) -> None:
    world = World()
    clock = world.clock
    run, model = setup(tmp_path, heartbeat(tmp_path, 3, clock), world)
    started = clock.monotonic()
    runner.run_now(run, model, world.context())
    (seen,) = world.seen
    assert (seen.status, seen.output) == (Status.PASS, "heartbeat: 3 s old (max 15 s)")
    assert model.snapshot().targets[0].probes[0].output == seen.output
    assert run.schedule.next_at == started + run.spec.period_s
    assert run.answered_at == started


async def test_in_place_it_says_what_the_timed_run_says(tmp_path: Path) -> None:
    world = World()
    clock = world.clock
    run, _model = setup(tmp_path, heartbeat(tmp_path, 40, clock), world)
    assert isinstance(run.check, probes.Instant)
    now = probes.run_now("app", run.probe, run.check, clock)
    timed = await probes.run("app", run.probe, run.check, run.timeout_s, clock)
    assert now == timed
    assert now.status is Status.FAIL


def test_a_stale_heartbeat_is_confirmed_at_the_confirm_interval(tmp_path: Path) -> None:
    world = World()
    clock = world.clock
    run, model = setup(tmp_path, heartbeat(tmp_path, 40, clock), world)
    runner.run_now(run, model, world.context())
    assert run.schedule.next_at == clock.monotonic() + run.spec.confirm_interval_s
    assert run.schedule.early_s == 0.0  # a confirm re-probe never goes early


@pytest.mark.parametrize("why", ["inactive", "paused"])
def test_an_inactive_unit_or_an_open_breaker_skips_a_period(tmp_path: Path, why: str) -> None:
    world = World()
    clock = world.clock
    run, model = setup(tmp_path, heartbeat(tmp_path, 1, clock), world)
    if why == "paused":
        world.paused = True
    else:
        world.unit = UnitState("app.service", active_state=ActiveState.INACTIVE)
    runner.run_now(run, model, world.context())
    assert world.seen == []
    assert run.schedule.next_at == clock.monotonic() + run.spec.period_s


def test_a_check_that_raises_becomes_a_result(tmp_path: Path) -> None:
    world = World()
    run, model = setup(tmp_path, 'type = "memory"\n', world)
    run = replace(run, check=MemoryCheck(MemoryProbe(type="memory"), proc=tmp_path))  # no meminfo
    runner.run_now(run, model, world.context())
    (seen,) = world.seen
    assert seen.status is Status.FAIL
    assert seen.output.startswith("memory: FileNotFoundError: ")
