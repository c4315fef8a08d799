"""Carries out what the recovery policy decides: restart, free a port, give up loudly.

It joins the policy to the adapters (systemd, ports, the cure command) and says what it did
as typed events (`supervisor.happenings`); it knows no destination: history, metrics, logs
and the alert policy subscribe in the composition layer. One action per target at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.config import OUTPUT_MAX_BYTES, Config, TargetConfig
from supervisor.errors import BusError
from supervisor.happenings import (
    CureRan,
    CureStarting,
    Emit,
    JobResult,
    ManualRestart,
    Outcome,
    PortFreed,
    PortRefused,
    RecoveryFinished,
    RecoveryGaveUp,
    RecoveryReset,
    RecoveryStarted,
    Repair,
    Step,
)
from supervisor.model import Clock
from supervisor.probing.process import minimal_env, run_command
from supervisor.recovery import ports
from supervisor.recovery.policy import Action, Decision, Recovery
from supervisor.watch.health import HealthModel
from supervisor.watch.systemd import Systemd

log = logging.getLogger(__name__)

BOUND_POLL_S = 0.25  # how soon to look again while systemd stops a root's bound dependants


@dataclass
class _Attempt:
    """How far one attempt went and how it ended (DRY_RUN until something else is known)."""

    repair: Repair
    outcome: Outcome = Outcome.DRY_RUN
    exit_code: int | None = None
    error: str = ""


class Repairer:
    """Per-target recovery state and the actions that follow from it."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        model: HealthModel,
        systemd: Systemd,
        wake: Callable[[], None],
        emit: Emit,
        previous: Repairer | None = None,
    ) -> None:
        self._config = config
        self._emit = emit
        self._model = model
        self._systemd = systemd
        self._wake = wake
        self._dry_run = config.dry_run
        old = previous.policies if previous else {}
        # A reload keeps the attempts and give-ups of targets whose recovery is unchanged.
        self.policies: dict[str, Recovery] = {
            t.name: old[t.name]
            if t.name in old and old[t.name].config == t.recovery
            else Recovery(t.recovery, clock)
            for t in config.targets
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self._manual_at: dict[str, float] = {}
        self._clock = clock

    def step(self) -> float | None:
        """Decide for every target; start actions; return seconds until a backoff ends."""
        soonest: float | None = None
        # Dependencies first: a dependant is left alone while what it needs is down, and the
        # ones still failing once it is back are restarted in this order.
        targets = {t.name: t for t in self._config.targets}
        for name in self._model.relations.order(targets):
            target, policy = targets[name], self.policies[name]
            decision = policy.decide(self._model.target(target.name))
            if decision.action in (Action.RESTART, Action.RESET_START):
                stopping = self._model.relations.stopping_with(
                    self._model.target(name), self._model.snapshot().targets
                )
                if stopping is not None:
                    decision = Decision(Action.WAIT, f"systemd is stopping {stopping} with it")
                    soonest = min(soonest or BOUND_POLL_S, BOUND_POLL_S)
            if decision.action in (Action.RESTART, Action.RESET_START, Action.RUN):
                self._start(target, policy, decision)
            elif decision.action is Action.GIVE_UP:
                policy.give_up()
                gave_up = RecoveryGaveUp(
                    target.name, target.unit, decision.reason, policy.describe()
                )
                self._emit(gave_up)
            elif decision.action is Action.WAIT and decision.wait_s > 0:
                soonest = decision.wait_s if soonest is None else min(soonest, decision.wait_s)
            self._model.set_recovery(target.name, policy.describe(decision))
        return soonest

    def reset(self, name: str) -> bool:
        """Manual override: clear a target's give-up so the next pass may act at once."""
        policy = self.policies.get(name)
        if policy is None:
            return False
        policy.reset()
        self._model.set_blocker(name, None)
        self._emit(RecoveryReset(name))
        self._wake()
        return True

    def fresh(self, name: str) -> None:
        """Forget a target's attempts and give-up quietly (a hold on it ended)."""
        policy = self.policies.get(name)
        if policy is not None:
            policy.reset()
            self._model.set_blocker(name, None)

    def gave_up(self, name: str) -> bool:
        """True while automatic recovery of `name` is suspended."""
        policy = self.policies.get(name)
        return policy is not None and policy.gave_up

    def export(self) -> dict[str, Any]:
        """Every target's attempts and give-ups, for the state file."""
        return {name: policy.export() for name, policy in self.policies.items()}

    def restore(self, data: dict[str, Any]) -> None:
        """Resume attempts and give-ups saved by a previous run."""
        for name, saved in data.items():
            if name in self.policies and isinstance(saved, dict):
                self.policies[name].restore(saved)

    async def manual_restart(self, name: str, min_interval_s: float = 60.0) -> str:
        """A person asked for a restart (chat command); at most one per target per minute."""
        target = next((t for t in self._config.targets if t.name == name), None)
        if target is None:
            return f"{name} is not a configured target"
        if target.unit is None:
            return f"{name} watches the host: it has no unit to restart"
        now = self._clock.monotonic()
        last = self._manual_at.get(name)
        if last is not None and now - last < min_interval_s:
            return f"{name} was restarted {now - last:.0f} s ago; try again in a minute"
        self._manual_at[name] = now
        self._emit(ManualRestart(name, target.unit))
        try:
            job = await self._systemd.restart(target.unit, target.recovery.job_timeout_s)
            done = ManualRestart(name, target.unit, Outcome.of(job))
        except BusError as exc:
            done = ManualRestart(name, target.unit, Outcome.FAILED, error=str(exc))
        self._emit(done)
        return f"restart {name}: {done.result}"

    async def close(self) -> None:
        """Cancel actions under way (shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, target: TargetConfig, policy: Recovery, decision: Decision) -> None:
        policy.begin()
        task = asyncio.get_running_loop().create_task(self._act(target, policy, decision))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _act(self, target: TargetConfig, policy: Recovery, decision: Decision) -> None:
        """One attempt: the cure, freeing the ports, the job; always says how it ended."""
        attempt = _Attempt(Repair((Step(decision.action.value),)))
        try:
            await self._attempt(target, decision, attempt)
        except BusError as exc:
            attempt.outcome, attempt.error = Outcome.BUS_ERROR, str(exc)
        except Exception:  # recorded as what it is, never as a dry run; supervision goes on
            attempt.outcome = Outcome.ERROR
            log.exception("%s %s failed unexpectedly", attempt.repair.label, target.name)
        finally:
            policy.end(restarted=attempt.outcome is Outcome.DONE)
            self._emit(
                RecoveryFinished(
                    target.name,
                    attempt.repair,
                    attempt.outcome,
                    decision.attempt,
                    decision.max_attempts,
                    exit_code=attempt.exit_code,
                    error=attempt.error,
                )
            )
            self._model.set_recovery(target.name, policy.describe())
            self._wake()

    async def _attempt(self, target: TargetConfig, decision: Decision, attempt: _Attempt) -> None:
        """The steps of one attempt, noting in `attempt` how far it went and how it ended."""
        name, why = target.name, decision.reason
        tries = (decision.attempt, decision.max_attempts)
        if self._dry_run:
            self._emit(RecoveryStarted(name, attempt.repair, *tries, why, dry_run=True))
            return
        if Step.RUN.value in target.recovery.actions:
            self._emit(CureStarting(name, *tries, why))
            cure = await self._run_cure(target)
            if decision.action is Action.RUN:
                attempt.outcome, attempt.exit_code = cure.outcome, cure.exit_code
                return
            attempt.repair = attempt.repair.then(Step.RUN)  # the restart follows the command
        if Step.FREE_PORT.value in target.recovery.actions and target.ports:
            if await self._free_ports(target):
                attempt.outcome = Outcome.BLOCKED
                return
            attempt.repair = attempt.repair.then(Step.FREE_PORT)
        self._emit(RecoveryStarted(name, attempt.repair, *tries, why))
        attempt.outcome = Outcome.of(await self._run_job(target, decision))

    async def _run_cure(self, target: TargetConfig) -> CureRan:
        """Run the target's `run` command like an exec probe; DONE when it exits 0."""
        cfg = target.recovery
        assert cfg.run is not None  # the config requires it with the "run" action
        program = cfg.run[0]
        try:
            done = await run_command(
                cfg.run,
                env=minimal_env(cfg.run_env, os.environ),
                cwd=Path("/"),
                timeout_s=cfg.job_timeout_s,
                max_bytes=OUTPUT_MAX_BYTES,
            )
        except OSError as exc:
            why = str(exc.strerror or exc)
            cure = CureRan(target.name, program, Outcome.CANNOT_RUN, None, why)
            self._emit(cure)
            return cure
        said = " | ".join(line for line in (done.stdout + done.stderr).splitlines() if line)
        if done.timed_out:
            cure = CureRan(target.name, program, Outcome.TIMEOUT, None, said)
        else:
            outcome = Outcome.DONE if done.exit_code == 0 else Outcome.FAILED
            cure = CureRan(target.name, program, outcome, done.exit_code, said)
        self._emit(cure)
        return cure

    async def _run_job(self, target: TargetConfig, decision: Decision) -> JobResult:
        assert target.unit is not None  # host targets only run commands
        timeout = target.recovery.job_timeout_s
        if decision.action is Action.RESET_START:
            return await self._systemd.reset_and_start(target.unit, timeout)
        return await self._systemd.restart(target.unit, timeout)

    async def _free_ports(self, target: TargetConfig) -> bool:
        """Kill orphans holding the target's ports; True if a safety rule forbade one."""
        forbidden = []
        for port in target.ports:
            holders = await asyncio.to_thread(ports.find_holders, port)
            for holder in holders:
                reason = self._judge(holder, target)
                if reason is None:
                    outcome = await ports.terminate(holder, self._recheck(holder, target, port))
                    self._emit(
                        PortFreed(
                            target.name,
                            port,
                            holder.describe(),
                            holder.pid,
                            holder.cmdline,
                            holder.user,
                            outcome,
                        )
                    )
                elif target.unit not in holder.cgroup.split("/"):
                    self._emit(PortRefused(target.name, port, reason))
                    forbidden.append(f"port {port} held by {reason}")
        self._model.set_blocker(target.name, "; ".join(forbidden) or None)
        return bool(forbidden)

    def _judge(self, holder: ports.Holder, target: TargetConfig) -> str | None:
        assert target.unit is not None  # host targets own no ports
        others = [t.unit for t in self._config.targets if t.name != target.name and t.unit]
        return ports.judge(
            holder,
            own_unit=target.unit,
            other_units=others,
            our_pid=os.getpid(),
            our_uid=os.getuid(),
        )

    def _recheck(
        self, holder: ports.Holder, target: TargetConfig, port: int
    ) -> Callable[[], Awaitable[str | None]]:
        """Before each signal: is it still on the port, and does it still pass every rule?"""

        async def recheck() -> str | None:
            now = await asyncio.to_thread(ports.find_holders, port)
            same = [h for h in now if (h.pid, h.start_ticks) == (holder.pid, holder.start_ticks)]
            if not same:
                return f"{holder.describe()} no longer listens on port {port}"
            return self._judge(same[0], target)

        return recheck
