"""A target (a systemd user unit, or the host itself) and how it is recovered, as the daemon
holds them (checked by `config.schema.targets`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from supervisor.config.probes import ProbeConfig

RecoveryAction = Literal["restart", "free-port", "run"]


def _default_actions() -> list[RecoveryAction]:
    return ["restart"]


@dataclass(frozen=True, kw_only=True)
class DependenciesConfig:
    """How long one root cause's parts wait for each other (see `depends_on`)."""

    # A dependant stopped by systemd this soon after a unit it is bound to (BindsTo=,
    # Requires=, PartOf=) changed state went down with it: systemd's stop, not a person's.
    bound_stop_window_s: float = 5.0
    # A dependant freed by its root's return, still failing, gets this long for its restart
    # and start-up grace before it becomes an incident of its own.
    freed_wait_s: float = 60.0
    # A root's resolved notice waits this long at most for its dependants to come back.
    resolved_wait_s: float = 120.0


@dataclass(frozen=True, kw_only=True)
class RecoveryConfig:
    """How a failing target is repaired, how often, and when to stop trying."""

    enabled: bool = True
    actions: list[RecoveryAction] = field(default_factory=_default_actions)
    run: list[str] | None = None  # the command of the "run" action (like an exec probe's)
    run_env: dict[str, str] = field(default_factory=dict)
    max_attempts: int = 3  # within window_s, then give up
    window_s: float = 900.0
    # Delay before attempt 1, 2, 3...; the last repeats.
    backoff_s: list[float] = field(default_factory=lambda: [0.0, 10.0, 30.0])
    retry_after_give_up_s: float = 3600.0  # one slow retry per this long, never silent
    job_timeout_s: float = 30.0  # how long a restart job (or the run command) may take


@dataclass(frozen=True, kw_only=True)
class TargetConfig:
    """One watched systemd unit, or (without `unit`) the host itself."""

    name: str
    unit: str | None = None  # None: a host target (disk, memory, load, commands)
    critical: bool = False
    ports: list[int] = field(default_factory=list)
    period_s: float = 5.0
    timeout_s: float = 2.0
    failure_threshold: int = 3
    success_threshold: int = 1
    confirm_interval_s: float = 0.5
    startup_grace_s: float = 60.0  # failures count after a first pass or this long
    probes: list[ProbeConfig] = field(default_factory=list)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    # Targets this one needs that systemd does not know of (a dashboard that only reads the
    # trader's files); relations systemd knows (Requires=, BindsTo=, ...) are read from it.
    depends_on: list[str] = field(default_factory=list)


def probe_ids(target: TargetConfig) -> list[str]:
    """Each probe's id: its `name`, else its type ("http", "heartbeat", ...)."""
    return [p.name or p.type for p in target.probes]
