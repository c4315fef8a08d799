"""Recovery time per fault (dead, hung, stale heartbeat, orphan holding the port), from the
fault to the unit serving again from a new process: by the supervisor, by Monit (same period,
timeout and failure count) and by systemd alone (Restart=on-failure)."""

from __future__ import annotations

import random
import time
from functools import partial
from pathlib import Path
from typing import Any

from devtools.bench.faults import (
    Fault,
    describe_unit,
    inject,
    repair,
    served_again,
    wait_served,
)
from devtools.bench.monit import Monit, monit_checks
from devtools.bench.report import fmt_outcome
from devtools.bench.settings import (
    HEARTBEAT_MAX_AGE_S,
    RECOVERY_TIMEOUT_S,
    SCENARIOS,
    SETTLE_TIMEOUT_S,
    Settings,
    say,
)
from devtools.bench.stats import outcome
from devtools.bench.watchers import fleet_config, run_dir, supervisor
from devtools.sandbox import Sandbox


def bench_supervisor_recovery(
    box: Sandbox, work: Path, s: Settings, rng: random.Random
) -> dict[str, Any]:
    """Every scenario, `s.reps` times each, with one supervisor watching."""
    build = partial(
        fleet_config,
        box,
        recovery=True,
        heartbeat_max_age_s=HEARTBEAT_MAX_AGE_S,
        period_s=s.period_s,
    )
    results = {}
    with supervisor(box, work, "recovery", build) as sup:
        for scenario in SCENARIOS:
            values: list[float] = []
            missed: list[str] = []
            for _ in range(s.reps[scenario]):
                box.reset_failed()
                sup.wait_pass()
                if scenario in ("hung", "stale"):  # found by probes: the phase matters
                    _random_phase(s, rng)
                fault = inject(box, scenario, sup.pause, sup.resume)
                _measure(box, fault, values, missed)
            results[scenario] = outcome(values, missed, RECOVERY_TIMEOUT_S)
            say(f"  supervisor {scenario}: {fmt_outcome(results[scenario])}")
    return results


def _random_phase(s: Settings, rng: random.Random) -> None:
    """Where in the probe period the fault falls (the smoke run's figures are not judged:
    it puts the fault in at once and saves the wait)."""
    if not s.smoke:
        time.sleep(rng.uniform(0, s.period_s))


def _measure(box: Sandbox, fault: Fault, values: list[float], missed: list[str]) -> None:
    """Wait for a new process to serve after `fault`: its time into `values`, or a line into
    `missed` after RECOVERY_TIMEOUT_S; then put the unit right for the next repetition."""
    took = wait_served(box, fault, RECOVERY_TIMEOUT_S)
    if took is None:
        missed.append(f"not serving after {RECOVERY_TIMEOUT_S:g} s")
    else:
        values.append(took)
    repair(box, fault)


def bench_monit_recovery(
    box: Sandbox, work: Path, s: Settings, rng: random.Random
) -> dict[str, Any]:
    """Every scenario with a fresh `monit -I` watching it (the orphan case once)."""
    results = {}
    for scenario in SCENARIOS:
        check, checks = monit_checks(box, scenario)
        # Monit cannot free a port: one repetition shows whether a restart alone recovers.
        reps = 1 if scenario == "orphan" else s.reps[scenario]
        limit = s.not_recovered_wait_s if scenario == "orphan" else RECOVERY_TIMEOUT_S
        values: list[float] = []
        missed: list[str] = []
        mon = Monit(run_dir(work, f"monit-{scenario}"), checks, s.period_s)
        try:
            mon.start()
            for i in range(reps):
                box.reset_failed()
                _random_phase(s, rng)  # Monit polls: the phase matters
                mark = len(mon.lines())
                fault = inject(box, scenario, mon.pause, mon.resume)
                took = wait_served(box, fault, limit)
                if took is None:
                    execs = sum(" exec: " in line for line in mon.lines()[mark:])
                    missed.append(
                        f"not serving after {limit:g} s; Monit ran `systemctl restart` "
                        f"{execs} times; unit: {describe_unit(box, fault.program)}"
                    )
                else:
                    values.append(took)
                    if i + 1 < reps:
                        mon.wait_ok(check, mark)
                if i + 1 == reps:
                    mon.stop()  # before repairing: it must not restart the unit meanwhile
                repair(box, fault)
        finally:
            mon.stop()
        results[scenario] = outcome(values, missed, limit)
        say(f"  monit {scenario}: {fmt_outcome(results[scenario])}")
    return results


def bench_systemd_recovery(box: Sandbox, s: Settings) -> dict[str, Any]:
    """Restart=on-failure and no watcher: it restarts what dies and sees nothing else."""
    for program in ("dashboard", "trader"):
        text = box.unit_text(program).replace("Restart=no", "Restart=on-failure")
        box.install_unit(f"{program}.service", text, reload=False)
    box.daemon_reload()
    box.systemctl("restart", "dashboard.service", "trader.service")
    results: dict[str, Any] = {}
    try:
        for program in ("dashboard", "trader"):
            box.wait_ready(program, SETTLE_TIMEOUT_S)
        values: list[float] = []
        missed: list[str] = []
        for _ in range(s.reps["dead"]):
            box.reset_failed()
            box.wait_ready("dashboard", SETTLE_TIMEOUT_S)
            _measure(box, inject(box, "dead"), values, missed)
        results["dead"] = outcome(values, missed, RECOVERY_TIMEOUT_S)
        say(f"  systemd dead: {fmt_outcome(results['dead'])}")
        # Nothing in systemd can notice these; hung and stale share one wait (other units).
        for group in (("hung", "stale"), ("orphan",)):
            results.update(watch_unrecovered(box, group, s.not_recovered_wait_s))
    finally:
        box.restore_fleet()  # the standard units (Restart=no) again
    return results


def watch_unrecovered(box: Sandbox, group: tuple[str, ...], wait_s: float) -> dict[str, Any]:
    """Put the faults in place with no watcher but systemd; see whether anything recovers."""
    box.reset_failed()
    faults = [inject(box, scenario) for scenario in group]
    recovered: dict[str, float] = {}
    end = faults[0].t0 + wait_s
    while time.monotonic() < end:  # the whole wait, whatever recovers: nothing should
        for fault in faults:
            took = served_again(box, fault)
            if took is not None:
                recovered.setdefault(fault.scenario, took)
        time.sleep(0.1)
    results = {}
    for fault in faults:
        took = recovered.get(fault.scenario)
        waited = time.monotonic() - fault.t0
        if took is not None:
            results[fault.scenario] = outcome([took], [], waited)
        else:
            why = f"not serving after {waited:.0f} s; unit: {describe_unit(box, fault.program)}"
            results[fault.scenario] = outcome([], [why], round(waited, 1))
        repair(box, fault)
        say(f"  systemd {fault.scenario}: {fmt_outcome(results[fault.scenario])}")
    return results
