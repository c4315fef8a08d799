"""A target (a systemd user unit, or the host itself) and how it is recovered."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from supervisor.config.schema.base import (
    NAME_PATTERN,
    Count,
    FieldError,
    GraceSeconds,
    Port,
    Seconds,
    Strict,
    check_command,
    check_env,
)
from supervisor.config.schema.probes import UNIT_PROBES, ProbeConfig

_UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target", ".mount", ".path", ".scope")
# Probe timing keys: set on a target, they are the defaults of its probes.
_TIMING = (
    "period_s",
    "timeout_s",
    "failure_threshold",
    "success_threshold",
    "confirm_interval_s",
    "startup_grace_s",
)

RecoveryAction = Literal["restart", "free-port", "run"]
_UNIT_ACTIONS = ("restart", "free-port")


def _default_actions() -> list[RecoveryAction]:
    return ["restart"]


class DependenciesConfig(Strict):
    """How long one root cause's parts wait for each other (see `depends_on`)."""

    # A dependant stopped by systemd this soon after a unit it is bound to (BindsTo=,
    # Requires=, PartOf=) changed state went down with it: systemd's stop, not a person's.
    bound_stop_window_s: Seconds = 5.0
    # A dependant freed by its root's return, still failing, gets this long for its restart
    # and start-up grace before it becomes an incident of its own.
    freed_wait_s: Seconds = 60.0
    # A root's resolved notice waits this long at most for its dependants to come back.
    resolved_wait_s: Seconds = 120.0

    @model_validator(mode="after")
    def _resolved_after_freed(self) -> Self:
        if self.resolved_wait_s < self.freed_wait_s:
            # Otherwise the notice goes before a dependant could be counted back or failing.
            raise FieldError("resolved_wait_s", "must be at least freed_wait_s")
        return self


class RecoveryConfig(Strict):
    """How a failing target is repaired, how often, and when to stop trying."""

    enabled: bool = True
    actions: list[RecoveryAction] = Field(default_factory=_default_actions)
    run: list[str] | None = None  # the command of the "run" action (like an exec probe's)
    run_env: dict[str, str] = Field(default_factory=dict)
    max_attempts: Count = 3  # within window_s, then give up
    window_s: Seconds = 900.0
    backoff_s: list[Annotated[float, Field(ge=0, le=86_400)]] = Field(
        default_factory=lambda: [0.0, 10.0, 30.0], min_length=1
    )  # delay before attempt 1, 2, 3...; the last repeats
    retry_after_give_up_s: Seconds = 3600.0  # one slow retry per this long, never silent
    job_timeout_s: Seconds = 30.0  # how long a restart job (or the run command) may take

    @field_validator("run")
    @classmethod
    def _run(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_command(value)

    @field_validator("run_env")
    @classmethod
    def _run_env(cls, value: dict[str, str]) -> dict[str, str]:
        return check_env(value)

    @model_validator(mode="after")
    def _actions_make_sense(self) -> Self:
        actions = self.actions
        if not actions and self.enabled:
            raise FieldError("actions", "name at least one (restart, run), or set enabled = false")
        if "free-port" in actions and "restart" not in actions:
            raise FieldError("actions", '"free-port" only adds to "restart": add "restart"')
        if "run" in actions and self.run is None:
            raise FieldError("run", 'required when actions include "run": the command to run')
        if self.run is not None and "run" not in actions:
            raise FieldError("actions", 'add "run" for the run command to be used')
        return self


class TargetConfig(Strict):
    """One watched systemd unit, or (without `unit`) the host itself."""

    name: str = Field(pattern=NAME_PATTERN)
    unit: str | None = None  # None: a host target (disk, memory, load, commands)
    critical: bool = False
    ports: list[Port] = Field(default_factory=list)
    period_s: Seconds = 5.0
    timeout_s: Seconds = 2.0
    failure_threshold: Count = 3
    success_threshold: Count = 1
    confirm_interval_s: Seconds = 0.5
    startup_grace_s: GraceSeconds = 60.0  # failures count after a first pass or this long
    probes: list[ProbeConfig] = Field(default_factory=list)
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    # Targets this one needs that systemd does not know of (a dashboard that only reads the
    # trader's files); relations systemd knows (Requires=, BindsTo=, ...) are read from it.
    depends_on: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Timing keys are the probes' defaults; a host target's recovery is off by default."""
        if not isinstance(data, dict):
            return data
        if isinstance(data.get("probes"), list):
            inherited = {k: data[k] for k in _TIMING if k in data}
            data = {
                **data,
                "probes": [
                    {**inherited, **p} if isinstance(p, dict) else p for p in data["probes"]
                ],
            }
        recovery = data.get("recovery")
        if data.get("unit") is None and (recovery is None or isinstance(recovery, dict)):
            # Nothing to restart: unless told otherwise the only cure is the run command.
            recovery = dict(recovery or {"enabled": False})
            recovery.setdefault("actions", ["run"] if "run" in recovery else [])
            data = {**data, "recovery": recovery}
        return data

    @field_validator("unit")
    @classmethod
    def _unit_has_suffix(cls, value: str | None) -> str | None:
        if value is not None and (not value.endswith(_UNIT_SUFFIXES) or "/" in value):
            raise ValueError(f"must be a unit name such as trader.service, got {value!r}")
        return value

    @field_validator("recovery")
    @classmethod
    def _host_recovery(cls, value: RecoveryConfig, info: ValidationInfo) -> RecoveryConfig:
        if "unit" in info.data and info.data["unit"] is None:
            used = [a for a in value.actions if a in _UNIT_ACTIONS]
            if used:
                raise FieldError(
                    "actions",
                    f"a host target (no unit) has nothing to {used[0]}: "
                    'only the "run" action can recover it',
                )
        return value

    @field_validator("depends_on")
    @classmethod
    def _needs_names(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("name") in value:
            raise ValueError("a target cannot depend on itself")
        if len(set(value)) != len(value):
            raise ValueError("a target is named twice")
        return value

    @model_validator(mode="after")
    def _probes_fit(self) -> Self:
        names = [p.name or p.type for p in self.probes]  # their ids, as config.probe_ids
        if len(set(names)) != len(names):
            raise ValueError("two probes share a name: give one of them a `name`")
        if self.unit is None:
            for i, probe in enumerate(self.probes):
                if probe.type in UNIT_PROBES:
                    raise FieldError(
                        f"probes[{i}]", f"a host target (no unit) cannot have a {probe.type} probe"
                    )
            if self.ports:
                raise FieldError("ports", "a host target (no unit) owns no ports")
        return self
