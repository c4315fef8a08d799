"""Configuration: what the daemon holds (plain frozen dataclasses), and how a file becomes one.

The rules (types, ranges, what goes with what) live in `supervisor.config.schema`, pydantic
models loaded only while a config is checked: `load` imports them in this process (the
commands that run for a moment), the daemon checks each config in a short-lived child
process (`config.file`), so pydantic (about 16 MB) never stays resident. These classes and
the schema's have the same names and fields (`tests/unit/test_config_plain.py`).
Everything is imported from `supervisor.config`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from supervisor.config.probes import (
    OUTPUT_MAX_BYTES,
    DiskProbe,
    ExecProbe,
    HeartbeatProbe,
    HttpProbe,
    JsonCondition,
    LoadProbe,
    MemoryProbe,
    ProbeConfig,
    ResourcesProbe,
    TcpProbe,
    split_path,
)
from supervisor.config.targets import (
    DependenciesConfig,
    RecoveryAction,
    RecoveryConfig,
    TargetConfig,
    probe_ids,
)
from supervisor.errors import ConfigError

__all__ = [
    "API_KEY_HEADER",
    "OUTPUT_MAX_BYTES",
    "AlertsConfig",
    "BreakerConfig",
    "BudgetConfig",
    "CausesConfig",
    "Config",
    "DependenciesConfig",
    "DiskProbe",
    "ExecProbe",
    "HeartbeatProbe",
    "HistoryConfig",
    "HttpConfig",
    "HttpProbe",
    "JsonCondition",
    "LoadProbe",
    "MemoryProbe",
    "ProbeConfig",
    "RecoveryAction",
    "RecoveryConfig",
    "ResourcesProbe",
    "Secret",
    "TargetConfig",
    "TcpProbe",
    "TelegramConfig",
    "default_path",
    "load",
    "parse",
    "probe_ids",
    "split_path",
]

API_KEY_HEADER = "X-API-Key"  # where clients send http.api_key


class Secret:
    """A secret value that never shows in a repr, a log line or an error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))  # pickled by the check's child process, see config.file


@dataclass(frozen=True, kw_only=True)
class HttpConfig:
    """Where /health and /metrics are served."""

    host: str = "127.0.0.1"
    port: int = 5051  # 0 picks a free port (tests)
    api_key: Secret | None = None  # enables state-changing endpoints; off when unset
    access_log: bool = False
    # Host header names served besides loopback and `host` (DNS rebinding guard).
    allowed_hosts: list[str] = field(default_factory=list)
    max_connections: int = 64  # more are closed at once


@dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    """The supervisor's own budget: it must never be what hurts the trader."""

    cpu_percent: float = 1.0  # % of one core, averaged
    memory_mb: float = 100.0  # own RSS: over it, shed caches
    memory_hard_mb: float = 200.0  # over it, exit 75: systemd restarts


@dataclass(frozen=True, kw_only=True)
class BreakerConfig:
    """Pause active probes while the host is loaded (D-Bus events still flow)."""

    enabled: bool = True
    trip_cpu_percent: float = 90.0  # system-wide
    trip_memory_percent: float = 85.0
    resume_cpu_percent: float = 72.0
    resume_memory_percent: float = 68.0
    sustain_s: float = 10.0  # a condition must hold this long
    cooldown_s: float = 60.0  # minimum time open
    sample_interval_s: float = 2.0  # how often host and own load are sampled


@dataclass(frozen=True, kw_only=True)
class TelegramConfig:
    """Where alerts go and who may send commands."""

    token: Secret | None = None  # or token_file, or SUPERVISOR_ALERTS__TELEGRAM__TOKEN
    token_file: Path | None = None
    chat_ids: list[int]  # alerts go to these; commands only from these
    # When set, commands (and confirmation buttons) are taken only from these users, in the
    # chats above: in a group, not everyone who can read the alerts may restart the trader.
    allowed_user_ids: list[int] | None = None
    api_url: str = "https://api.telegram.org"
    commands: bool = True
    timeout_s: float = 10.0

    def read_token(self) -> str:
        """The token, from `token` or `token_file`; OSError if the file cannot be read."""
        if self.token is not None:
            return self.token.get_secret_value().strip()
        assert self.token_file is not None
        return self.token_file.read_text().strip()


@dataclass(frozen=True, kw_only=True)
class AlertsConfig:
    """When a person hears about failures (Alertmanager's spirit: once, then reminders)."""

    enabled: bool = True
    failure_threshold: int = 3  # failed rounds before an incident opens
    cooldown_s: float = 900.0  # no reminder sooner than this
    critical_after_s: float = 300.0  # a critical target failing this long is critical
    max_per_hour: int = 10  # beyond it alerts are held and sent later as one digest
    on_warn: bool = False  # a target in warn opens its own, lower-severity incident
    # This many failures within flap_window_s make a target "flapping": one alert, not one
    # per crash; "stable again" once it passed flap_quiet_s with no failure.
    flap_count: int = 3
    flap_window_s: float = 900.0
    flap_quiet_s: float = 300.0
    stopped_notice_after_s: float = 1800.0  # one notice when a stop on request lasts this long
    telegram: TelegramConfig | None = None


@dataclass(frozen=True, kw_only=True)
class HistoryConfig:
    """The event history (SQLite in state_dir) behind /events, /history and the page."""

    enabled: bool = True
    retention_days: float = 30.0
    max_mb: float = 50.0  # the file is pruned under this


@dataclass(frozen=True, kw_only=True)
class CausesConfig:
    """What a failure carries: its cause, and this much of the run's last output."""

    log_lines: int = 20  # last lines of the failed run
    log_line_width: int = 200  # characters; longer are cut


def default_state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_STATE_HOME/sidecar-supervisor` (XDG default ~/.local/state)."""
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sidecar-supervisor"


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration (the file, with SUPERVISOR_* variables laid over it: `load`)."""

    # Fields that may hold secrets: their input value is never echoed in an error.
    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_key", "token"})

    http: HttpConfig = field(default_factory=HttpConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    causes: CausesConfig = field(default_factory=CausesConfig)
    dependencies: DependenciesConfig = field(default_factory=DependenciesConfig)
    state_dir: Path = field(default_factory=default_state_dir)  # incidents, outbox, attempts
    dry_run: bool = False  # decide and log recovery actions, carry out none
    targets: list[TargetConfig]

    def units(self) -> list[str]:
        """The systemd units watched (host targets have none)."""
        return [t.unit for t in self.targets if t.unit is not None]

    def target(self, name: str) -> TargetConfig | None:
        """The named target, or None."""
        return next((t for t in self.targets if t.name == name), None)


def default_path() -> Path:
    """`$XDG_CONFIG_HOME/sidecar-supervisor/config.toml` (XDG default ~/.config)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sidecar-supervisor" / "config.toml"


def load(path: Path | None = None) -> Config:
    """Read and check the config; raise ConfigError naming the file and every problem."""
    return load_source(path)[0]


def load_source(path: Path | None = None) -> tuple[Config, bytes]:
    """The checked config and the exact bytes it came from (kept for the last word)."""
    path = path or default_path()
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(where, ["file not found (check-config --config PATH)"]) from None
    except OSError as exc:
        raise ConfigError(where, [f"cannot read: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(where, [f"not UTF-8 text at byte {exc.start}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, [f"TOML syntax error: {exc}"]) from None
    return parse(data, where), raw


def parse(
    data: dict[str, Any], where: str = "(data)", env: Mapping[str, str] | None = None
) -> Config:
    """Check the file's data (the environment's SUPERVISOR_* variables laid over it, unless
    `env` is given) and return the config; ConfigError names `where` and every problem."""
    from supervisor.config import schema  # pydantic: loaded only while a config is checked

    return schema.checked(data, where, os.environ if env is None else env)
