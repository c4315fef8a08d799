"""Carries out what the recovery policy decides: restart, free a port, give up loudly.

Part of the composition layer (like daemon.py): it joins the policy to the adapters
(systemd, ports) and reports to the model and metrics. One action per target at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from supervisor.api.metrics import Metrics
from supervisor.config import OUTPUT_MAX_BYTES, Config, TargetConfig
from supervisor.errors import BusError
from supervisor.history.events import Discard, EventSink, Kind
from supervisor.model import Clock
from supervisor.probing.command import minimal_env, run_command
from supervisor.recovery import ports
from supervisor.recovery.policy import Action, Decision, Recovery
from supervisor.watch.health import HealthModel
from supervisor.watch.systemd import Systemd

log = logging.getLogger(__name__)


class Repairer:
    """Per-target recovery state and the actions that follow from it."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        model: HealthModel,
        systemd: Systemd,
        metrics: Metrics,
        wake: Callable[[], None],
        previous: Repairer | None = None,
        on_action: Callable[[str, str], None] | None = None,
        events: EventSink | None = None,
    ) -> None:
        self._config = config
        self._events: EventSink = events or Discard()
        self._model = model
        self._systemd = systemd
        self._metrics = metrics
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
        self._on_action = on_action or (lambda _target, _words: None)
        self._manual_at: dict[str, float] = {}
        self._clock = clock

    def step(self) -> float | None:
        """Decide for every target; start actions; return seconds until a backoff ends."""
        soonest: float | None = None
        for target in self._config.targets:
            policy = self.policies[target.name]
            decision = policy.decide(self._model.target(target.name))
            if decision.action in (Action.RESTART, Action.RESET_START, Action.RUN):
                self._start(target, policy, decision)
            elif decision.action is Action.GIVE_UP:
                policy.give_up()
                log.error(
                    "giving up on %s (%s): %s; next try %s",
                    target.name,
                    target.unit,
                    decision.reason,
                    policy.describe(),
                )
                self._metrics.observe_recovery(target.name, "give-up", "gave-up")
                self._events.record(
                    Kind.RECOVERY,
                    f"gave up on {target.name}: {decision.reason}; next try {policy.describe()}",
                    target.name,
                    action="give-up",
                    reason=decision.reason,
                )
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
        log.warning("recovery state of %s reset by request", name)
        self._events.record(
            Kind.RECOVERY, f"recovery of {name} reset by request", name, action="reset"
        )
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
        log.warning("restarting %s (%s) on request", name, target.unit)
        self._events.record(Kind.RECOVERY, f"restart {name} on request", name, action="manual")
        try:
            result = await self._systemd.restart(target.unit, target.recovery.job_timeout_s)
        except BusError as exc:
            result = f"failed: {exc}"
        self._metrics.observe_recovery(name, "manual-restart", result.split(":")[0])
        self._events.record(
            Kind.RECOVERY,
            f"restart {name} on request: {result}",
            name,
            action="manual",
            result=result,
        )
        if result == "done":
            self._on_action(name, "restarted on request")
        return f"restart {name}: {result}"

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
        action = decision.action.value
        where = f"{target.name} (attempt {decision.attempt}/{decision.max_attempts})"
        result = "dry-run"
        try:
            if self._dry_run:
                log.warning("dry run: would %s %s: %s", action, where, decision.reason)
                return
            if "run" in target.recovery.actions:
                log.warning("running the cure for %s: %s", where, decision.reason)
                result = await self._run_cure(target)
                if decision.action is Action.RUN:
                    return
                action = f"run+{action}"  # the restart follows whatever the command did
            if "free-port" in target.recovery.actions and target.ports:
                blocked = await self._free_ports(target)
                if blocked:
                    result = "blocked"
                    return
                action = f"free-port+{action}"
            log.warning("%s %s: %s", action, where, decision.reason)
            self._events.record(
                Kind.RECOVERY,
                f"{action} {where}: {decision.reason}",
                target.name,
                action=action,
                attempt=decision.attempt,
                maxAttempts=decision.max_attempts,
            )
            result = await self._run_job(target, decision)
            if result == "done":
                self._on_action(
                    target.name,
                    "restarted" if "free-port" not in action else "port freed and restarted",
                )
            log.log(
                logging.INFO if result == "done" else logging.ERROR,
                "%s %s: job %s",
                action,
                target.name,
                result,
            )
        except BusError as exc:
            result = "bus-error"
            log.error("%s %s failed: %s", action, target.name, exc)
        except Exception:  # recorded as what it is, never as a dry run; supervision goes on
            result = "error"
            log.exception("%s %s failed unexpectedly", action, target.name)
        finally:
            policy.end(restarted=result == "done")
            self._events.record(
                Kind.RECOVERY,
                f"{action} {where}: {result}",
                target.name,
                action=action,
                result=result,
                attempt=decision.attempt,
            )
            self._metrics.observe_recovery(target.name, action, result)
            self._model.set_recovery(target.name, policy.describe())
            self._wake()

    async def _run_cure(self, target: TargetConfig) -> str:
        """Run the target's `run` command like an exec probe; "done" when it exits 0."""
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
            log.error("cannot run %s for %s: %s", program, target.name, exc.strerror or exc)
            return "cannot-run"
        said = " | ".join(line for line in (done.stdout + done.stderr).splitlines() if line)
        if done.timed_out:
            result = "timeout"
        else:
            result = "done" if done.exit_code == 0 else f"failed (exit {done.exit_code})"
        level = logging.INFO if result == "done" else logging.ERROR
        log.log(level, "ran %s for %s: %s; output: %s", program, target.name, result, said or "-")
        self._on_action(target.name, f"ran {Path(program).name}: {result}")
        return result

    async def _run_job(self, target: TargetConfig, decision: Decision) -> str:
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
                    log.warning(
                        "freed port %d for %s: %s: %s",
                        port,
                        target.name,
                        holder.describe(),
                        outcome,
                    )
                    self._metrics.observe_recovery(target.name, "free-port", "killed")
                    self._events.record(
                        Kind.RECOVERY,
                        f"freed port {port} for {target.name}: {holder.describe()}: {outcome}",
                        target.name,
                        action="free-port",
                        pid=holder.pid,
                        cmdline=holder.cmdline,
                        user=holder.user,
                        result=outcome,
                    )
                elif target.unit not in holder.cgroup.split("/"):
                    log.error("not freeing port %d for %s: %s", port, target.name, reason)
                    self._events.record(
                        Kind.RECOVERY,
                        f"refused to free port {port} for {target.name}: {reason}",
                        target.name,
                        action="free-port",
                        result="refused",
                        rule=reason,
                    )
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
