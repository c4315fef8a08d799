"""What the target list defines: the health model, the probe runs and recovery.

Rebuilt on reload; a `previous` fleet hands over what must survive it. `InForce` is what a
reload replaces, as one frozen value: the config and this fleet (`Parts.use` hands it out).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from supervisor.api import render
from supervisor.config import Config
from supervisor.happenings import Emit
from supervisor.model import Clock
from supervisor.probing import runner
from supervisor.recovery.executor import Repairer
from supervisor.watch.health import HealthModel, Notes, TargetSpec
from supervisor.watch.intent import FlapRule
from supervisor.watch.systemd import Systemd


@dataclass
class Fleet:
    """The model every part reads, its probe runs and its repairer."""

    model: HealthModel
    runs: list[runner.ProbeRun]
    repairer: Repairer

    def names(self) -> list[str]:
        """Its targets' names, in config order."""
        return self.model.names

    def status(self) -> str:
        """Its picture as the chat's /status table."""
        return render.table(render.health_document(self.model.snapshot()))


def build_fleet(
    config: Config,
    *,
    clock: Clock,
    systemd: Systemd,
    probing: runner.ProbeContext,
    rng: random.Random,
    emit: Emit,
    notes: Notes,
    previous: Fleet | None = None,
) -> Fleet:
    """Build the fleet for `config` (no I/O: nothing runs until the daemon starts it)."""
    alerts = config.alerts
    flap = FlapRule(alerts.flap_count, alerts.flap_window_s, alerts.flap_quiet_s)
    specs = [TargetSpec(t.name, t.unit, t.critical) for t in config.targets]
    model = HealthModel(specs, clock, flap, notes)
    if previous is not None:
        model.carry_over(previous.model)
    model.relations.declare({t.name: t.depends_on for t in config.targets}, config.dependencies)
    repairer = Repairer(
        config,
        clock=clock,
        model=model,
        systemd=systemd,
        wake=probing.wake,
        emit=emit,
        previous=previous.repairer if previous else None,
    )
    runs = runner.plan(config, model, probing, rng, previous.runs if previous else ())
    return Fleet(model, runs, repairer)


@dataclass(frozen=True)
class InForce:
    """What a reload replaces: the config and the fleet built from it, handed as one value."""

    config: Config
    fleet: Fleet
