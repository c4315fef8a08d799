"""The recovery policy: from a target's health and past attempts, the next action.

Pure (injected clock, no I/O). The daemon asks `decide()` on every supervision pass and
carries out what it says; `begin()`/`end()` record attempts so backoff, the window and
give-up hold across passes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from supervisor.config import RecoveryConfig
from supervisor.model import ActiveState, Clock, Hold, Status, TargetHealth, backoff
from supervisor.times import local_clock


class Action(StrEnum):
    """What to do about a target now."""

    NONE = "none"  # healthy, disabled, or an action is already under way
    WAIT = "wait"  # failing, but not yet (backoff, or systemd is restarting it)
    RESTART = "restart"
    RESET_START = "reset-failed+start"  # systemd's start limit was hit
    RUN = "run"  # run the configured command (a cure that is not a restart)
    GIVE_UP = "give-up"
    HELD = "held"  # a person holds it: nothing is restarted until the hold ends


@dataclass(frozen=True, slots=True)
class Decision:
    """An action, why, and which attempt it would be."""

    action: Action
    reason: str
    attempt: int = 0
    max_attempts: int = 0
    wait_s: float = 0.0


class Recovery:
    """One target's recovery state: attempts in the window, backoff, give-up, slow retry."""

    def __init__(self, config: RecoveryConfig, clock: Clock) -> None:
        self._cfg = config
        self._clock = clock
        self._attempts: deque[float] = deque()  # monotonic start times within the window
        # The same attempts' wall-clock times, taken once: recomputing them from monotonic
        # time at every export jitters, which made the state file look changed every pass.
        self._walls: deque[float] = deque()
        self._busy = False
        self._gave_up_until: float | None = None  # monotonic
        self._gave_up_wall: float | None = None
        self._slow_retry = False  # after a give-up expires: one attempt, then give up again

    @property
    def config(self) -> RecoveryConfig:
        """The settings this policy follows."""
        return self._cfg

    @property
    def gave_up(self) -> bool:
        """True while automatic recovery is suspended for this target."""
        return self._gave_up_until is not None

    def decide(self, health: TargetHealth) -> Decision:
        """The next step for a target in this state, now."""
        now = self._clock.monotonic()
        cfg = self._cfg
        if self._slow_retry and not self._busy and _healthy(health):
            # The slow retry worked: a later failure gets the usual attempts (still counted
            # in the window), not an immediate give-up.
            self._slow_retry = False
        if health.hold is not None:
            return _held(health.hold)
        if health.blocked_by is not None and health.status is Status.FAIL:
            # One root cause: its recovery comes first; this one's waits until it is back.
            return Decision(Action.WAIT, f"blocked by {health.blocked_by}")
        if not cfg.enabled or self._busy or health.status is not Status.FAIL:
            return Decision(Action.NONE, "nothing to do")
        unit = health.unit_state
        waiting = _unit_busy(health)
        if waiting is not None:
            return waiting
        if self._gave_up_until is not None:
            if now < self._gave_up_until:
                return Decision(Action.NONE, "gave up")
            self._gave_up_until = self._gave_up_wall = None
            self._attempts.clear()
            self._walls.clear()
            self._slow_retry = True
        self._prune(now)
        used = len(self._attempts)
        if used >= cfg.max_attempts or (self._slow_retry and used >= 1):
            return Decision(
                Action.GIVE_UP,
                f"{used} attempts in {cfg.window_s:g} s did not help",
                used,
                cfg.max_attempts,
            )
        delay = backoff(cfg.backoff_s, used)
        start = self._attempts[-1] if self._attempts else now - (self._clock.time() - health.since)
        remaining = start + delay - now
        if remaining > 0:
            return Decision(
                Action.WAIT, f"backoff {delay:g} s", used + 1, cfg.max_attempts, remaining
            )
        action = Action.RUN
        if "restart" in cfg.actions and unit is not None:
            action = Action.RESET_START if unit.result == "start-limit-hit" else Action.RESTART
        return Decision(action, health.output, used + 1, cfg.max_attempts)

    def begin(self) -> None:
        """An attempt starts now (counted even if it fails)."""
        self._attempts.append(self._clock.monotonic())
        self._walls.append(self._clock.time())
        self._busy = True

    def end(self, restarted: bool = False) -> None:
        """The attempt finished; `restarted`: its job brought the unit up again.

        A slow retry that brought the unit up ends slow-retry mode at once: a fault that
        follows before the probes have judged the new process gets the usual attempts (still
        counted in the window), not a give-up that leaves the unit down for another hour.
        """
        self._busy = False
        if restarted:
            self._slow_retry = False

    def give_up(self) -> None:
        """Stop automatic recovery until the slow retry is due."""
        now = self._clock.monotonic()
        self._gave_up_until = now + self._cfg.retry_after_give_up_s
        self._gave_up_wall = self._clock.time() + self._cfg.retry_after_give_up_s
        self._slow_retry = False

    def reset(self) -> None:
        """Manual override: forget attempts and give-up, so the next pass may act at once."""
        self._attempts.clear()
        self._walls.clear()
        self._gave_up_until = self._gave_up_wall = None
        self._slow_retry = False

    def describe(self, decision: Decision | None = None) -> str:
        """Words for /health: idle, waiting 8s, restarting, attempt 2/3, gave up until 14:05."""
        if decision is not None and decision.action is Action.HELD:
            return decision.reason
        if self._busy:
            doing = "restarting" if "restart" in self._cfg.actions else "running the cure"
            return f"{doing} (attempt {len(self._attempts)}/{self._cfg.max_attempts})"
        if self._gave_up_wall is not None:
            return f"gave up until {local_clock(self._gave_up_wall, seconds=False)}"
        if not self._cfg.enabled:
            return "disabled"
        if decision is not None and decision.action is Action.WAIT:
            if decision.wait_s > 0:
                return (
                    f"waiting {decision.wait_s:.0f}s (attempt {decision.attempt}/"
                    f"{decision.max_attempts} next)"
                )
            return f"waiting: {decision.reason}"
        self._prune(self._clock.monotonic())
        if self._attempts:
            return f"attempt {len(self._attempts)}/{self._cfg.max_attempts}"
        return "idle"

    def export(self) -> dict[str, Any]:
        """Attempts and give-up as wall-clock times (monotonic time does not survive a reboot)."""
        return {
            "attempts": list(self._walls),
            "gave_up_until": self._gave_up_wall,
            "slow_retry": self._slow_retry,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Take back what `export()` gave, so a restart neither forgets nor resets give-ups."""
        mono, wall = self._clock.monotonic(), self._clock.time()
        try:
            self._walls = deque(sorted(float(a) for a in data["attempts"]))
            self._attempts = deque(mono - (wall - a) for a in self._walls)
            until = data.get("gave_up_until")
            if until is not None:
                self._gave_up_wall = float(until)
                self._gave_up_until = mono - (wall - float(until))
            self._slow_retry = bool(data.get("slow_retry", False))
        except (KeyError, TypeError, ValueError):
            return  # unusable entry: start this target fresh
        self._prune(mono)

    def _prune(self, now: float) -> None:
        while self._attempts and self._attempts[0] <= now - self._cfg.window_s:
            self._attempts.popleft()
            self._walls.popleft()


def _unit_busy(health: TargetHealth) -> Decision | None:
    """Why the unit must be left to systemd now, if it must (None: we may act)."""
    unit = health.unit_state
    if health.unit is None:  # a host target has no unit to wait for
        return None
    if unit is None or not unit.found:
        return Decision(Action.NONE, "no such unit: restarting cannot help")
    if unit.active_state is ActiveState.ACTIVATING and unit.sub_state == "auto-restart":
        return Decision(Action.WAIT, "systemd is restarting it (Restart=)")
    if unit.active_state in (ActiveState.ACTIVATING, ActiveState.DEACTIVATING):
        return Decision(Action.WAIT, f"unit is {unit.active_state.value}")
    if unit.job_id:
        # Between auto-restart and start, systemd's own restart job passes through
        # inactive (dead): a restart of ours now would replace its job and fight it.
        return Decision(Action.WAIT, f"systemd has job {unit.job_id} queued for it")
    return None


def _held(hold: Hold) -> Decision:
    """A person holds the target: nothing is done until the hold ends."""
    until = local_clock(hold.until)
    why = f"; {hold.reason}" if hold.reason else ""
    return Decision(Action.HELD, f"held until {until} by {hold.by or 'someone'}{why}")


def _healthy(health: TargetHealth) -> bool:
    """Passing, with every probe having judged the current process."""
    return health.status is Status.PASS and all(
        p.status is not Status.UNKNOWN for p in health.probes
    )
