"""The config's rules: pydantic models over the TOML file, with SUPERVISOR_* overrides.

All validation lives here (targets and probes in their own modules), so the rest of the code
can trust what it is given. Loaded only while a config is checked (`supervisor.config.parse`):
a checked model becomes the plain class of the same name (`to_plain`), which is what the
daemon holds, so pydantic never stays resident in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

import supervisor.config as plain
from supervisor import graph
from supervisor.config.schema.base import Count, FieldError, Percent, Seconds
from supervisor.config.schema.base import Strict as _Strict
from supervisor.config.schema.env import EnvValueError, merged, overrides
from supervisor.config.schema.targets import DependenciesConfig, TargetConfig
from supervisor.errors import ConfigError

__all__ = ["Config", "checked", "describe_errors", "to_plain"]

API_KEY_MIN_LENGTH = 16


class HttpConfig(_Strict):
    """Where /health and /metrics are served."""

    host: str = "127.0.0.1"
    port: int = Field(5051, ge=0, le=65535)  # 0 picks a free port (tests)
    api_key: SecretStr | None = None  # enables state-changing endpoints; off when unset
    access_log: bool = False
    # Host header names served besides loopback and `host` (DNS rebinding guard).
    allowed_hosts: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]_-]+$")]] = []
    max_connections: int = Field(64, ge=1, le=1000)  # more are closed at once

    @field_validator("api_key")
    @classmethod
    def _long_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < API_KEY_MIN_LENGTH:
            raise ValueError(f"too short: use at least {API_KEY_MIN_LENGTH} random characters")
        return value


class BudgetConfig(_Strict):
    """The supervisor's own budget: it must never be what hurts the trader."""

    cpu_percent: Annotated[float, Field(gt=0, le=400)] = 1.0  # % of one core, averaged
    memory_mb: Annotated[float, Field(gt=0)] = 100.0  # own RSS: over it, shed caches
    memory_hard_mb: Annotated[float, Field(gt=0)] = 200.0  # over it, exit 75: systemd restarts

    @model_validator(mode="after")
    def _hard_above_soft(self) -> Self:
        if self.memory_hard_mb < self.memory_mb:
            raise ValueError("memory_hard_mb must be at least memory_mb")
        return self


class BreakerConfig(_Strict):
    """Pause active probes while the host is loaded (D-Bus events still flow)."""

    enabled: bool = True
    trip_cpu_percent: Percent = 90.0  # system-wide
    trip_memory_percent: Percent = 85.0
    resume_cpu_percent: Percent = 72.0
    resume_memory_percent: Percent = 68.0
    sustain_s: Annotated[float, Field(ge=0, le=86_400)] = 10.0  # a condition must hold this long
    cooldown_s: Annotated[float, Field(ge=0, le=86_400)] = 60.0  # minimum time open
    sample_interval_s: Seconds = 2.0  # how often host and own load are sampled

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        if self.resume_cpu_percent >= self.trip_cpu_percent:
            raise ValueError("resume_cpu_percent must be below trip_cpu_percent")
        if self.resume_memory_percent >= self.trip_memory_percent:
            raise ValueError("resume_memory_percent must be below trip_memory_percent")
        return self


class TelegramConfig(_Strict):
    """Where alerts go and who may send commands."""

    token: SecretStr | None = None  # or token_file, or SUPERVISOR_ALERTS__TELEGRAM__TOKEN
    token_file: Path | None = None
    chat_ids: list[int] = Field(min_length=1)  # alerts go to these; commands only from these
    # When set, commands (and confirmation buttons) are taken only from these users, in the
    # chats above: in a group, not everyone who can read the alerts may restart the trader.
    allowed_user_ids: list[int] | None = Field(None, min_length=1)
    api_url: str = Field("https://api.telegram.org", pattern=r"^https?://[^\s]+$")
    commands: bool = True
    timeout_s: Seconds = 10.0

    @field_validator("token_file")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value else None

    @model_validator(mode="after")
    def _token_known(self) -> Self:
        if self.token is None and self.token_file is None:
            raise ValueError("set token_file (or token, or SUPERVISOR_ALERTS__TELEGRAM__TOKEN)")
        return self


class AlertsConfig(_Strict):
    """When a person hears about failures (Alertmanager's spirit: once, then reminders)."""

    enabled: bool = True
    failure_threshold: Count = 3  # failed rounds before an incident opens
    cooldown_s: Seconds = 900.0  # no reminder sooner than this
    critical_after_s: Seconds = 300.0  # a critical target failing this long is critical
    max_per_hour: Count = 10  # beyond it alerts are held and sent later as one digest
    on_warn: bool = False  # a target in warn opens its own, lower-severity incident
    # This many failures within flap_window_s make a target "flapping": one alert, not one
    # per crash; "stable again" once it passed flap_quiet_s with no failure.
    flap_count: Annotated[int, Field(ge=2, le=1000)] = 3
    flap_window_s: Seconds = 900.0
    flap_quiet_s: Seconds = 300.0
    stopped_notice_after_s: Seconds = 1800.0  # one notice when a stop on request lasts this long
    telegram: TelegramConfig | None = None


class HistoryConfig(_Strict):
    """The event history (SQLite in state_dir) behind /events, /history and the page."""

    enabled: bool = True
    retention_days: Annotated[float, Field(gt=0, le=3650)] = 30.0
    max_mb: Annotated[float, Field(ge=1, le=10_000)] = 50.0  # the file is pruned under this


class CausesConfig(_Strict):
    """What a failure carries: its cause, and this much of the run's last output."""

    log_lines: Annotated[int, Field(ge=1, le=200)] = 20  # last lines of the failed run
    log_line_width: Annotated[int, Field(ge=20, le=1000)] = 200  # characters; longer are cut


class Config(_Strict):
    """The whole configuration (the file, with SUPERVISOR_* variables laid over it: `load`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    # Fields that may hold secrets: their input value is never echoed in an error.
    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_key", "token"})

    @field_validator("state_dir")
    @classmethod
    def _expand_state(cls, value: Path) -> Path:
        return value.expanduser()

    http: HttpConfig = Field(default_factory=HttpConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    causes: CausesConfig = Field(default_factory=CausesConfig)
    dependencies: DependenciesConfig = Field(default_factory=DependenciesConfig)
    state_dir: Path = Field(default_factory=plain.default_state_dir)  # incidents, outbox, attempts
    dry_run: bool = False  # decide and log recovery actions, carry out none
    targets: list[TargetConfig] = Field(min_length=1)

    @field_validator("targets")
    @classmethod
    def _names_unique(cls, value: list[TargetConfig]) -> list[TargetConfig]:
        seen: set[str] = set()
        for what in ("name", "unit"):
            seen.clear()
            for target in value:
                key = getattr(target, what)
                if key is None:
                    continue  # host targets have no unit
                if key in seen:
                    raise ValueError(f"two targets share the {what} {key!r}")
                seen.add(key)
        return _check_dependencies(value)

    def units(self) -> list[str]:
        """The systemd units watched (host targets have none)."""
        return [t.unit for t in self.targets if t.unit is not None]

    def target(self, name: str) -> TargetConfig | None:
        """The named target, or None."""
        return next((t for t in self.targets if t.name == name), None)


def _check_dependencies(targets: list[TargetConfig]) -> list[TargetConfig]:
    """Every name in `depends_on` is a target, and no chain of them comes back to its start."""
    names = [t.name for t in targets]
    for i, target in enumerate(targets):
        for needed in target.depends_on:
            if needed not in names:
                where = f"[{i}]({target.name}).depends_on"
                raise FieldError(
                    where, f"no target is named {needed!r} (known: {', '.join(names)})"
                )
    found = graph.cycle({t.name: t.depends_on for t in targets})
    if found is not None:
        i = names.index(found[0])
        where = f"[{i}]({found[0]}).depends_on"
        raise FieldError(where, f"dependency cycle: {' -> '.join(found)}")
    return targets


def checked(data: dict[str, Any], where: str, env: Mapping[str, str]) -> plain.Config:
    """The file's data with the environment laid over it, checked; ConfigError if invalid."""
    try:
        # The environment wins over the file, so a unit's Environment= can override a key.
        data = merged(data, overrides(env, Config))
    except EnvValueError as exc:
        raise ConfigError(where, [str(exc)]) from None
    try:
        model = Config(**data)
    except ValidationError as exc:
        raise ConfigError(where, describe_errors(exc, data)) from None
    out = to_plain(model)
    assert isinstance(out, plain.Config)
    return out


def to_plain(value: Any) -> Any:
    """A checked model as the daemon holds it: the plain class of the same name, field by
    field (`supervisor.config`); secrets stay wrapped."""
    if isinstance(value, BaseModel):
        made = getattr(plain, type(value).__name__)
        return made(**{name: to_plain(getattr(value, name)) for name in type(value).model_fields})
    if isinstance(value, SecretStr):
        return plain.Secret(value.get_secret_value())
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    return value


def describe_errors(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    """One line per problem: the dotted field path, what is wrong, and the value given."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = _dotted(err["loc"], data)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] == "value_error":
            error = err.get("ctx", {}).get("error", message)
            if isinstance(error, FieldError):
                dot = "" if error.where.startswith("[") else "."
                loc = f"{loc}{dot}{error.where}"
            message = str(error)
        secret = any(str(part) in Config.secret_fields for part in err["loc"])
        quiet = ("missing", "extra_forbidden", "value_error")
        shown = "" if secret or err["type"] in quiet else _given(err)
        lines.append(f"{loc}: {message}{shown}")
    return lines


def _given(err: Any) -> str:
    value = err.get("input")
    if isinstance(value, dict | list) or value is None:
        return ""
    return f" (got {value!r})"


def _dotted(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """`targets[1](dashboard).ports[0]`: indexes plus the target's name where known."""
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f"({node['name']})"
        elif isinstance(node, dict) and node.get("type") == part and part not in node:
            out += f"({part})"  # pydantic's discriminator tag: the probe's type, not a key
        else:
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"
