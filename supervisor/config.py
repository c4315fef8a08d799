"""Configuration: pydantic models over a TOML file, with SUPERVISOR_* environment overrides.

All validation lives here, so the rest of the code can trust what it is given.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from supervisor.errors import ConfigError

_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Port = Annotated[int, Field(ge=1, le=65535)]
_UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target", ".mount", ".path", ".scope")


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(_Strict):
    """Where /health and /metrics are served."""

    host: str = "127.0.0.1"
    port: int = Field(5051, ge=0, le=65535)  # 0 picks a free port (tests)
    api_key: SecretStr | None = None  # enables state-changing endpoints; off when unset
    access_log: bool = False


class TargetConfig(_Strict):
    """One watched systemd unit."""

    name: str = Field(pattern=_NAME_PATTERN)
    unit: str
    critical: bool = False
    ports: list[Port] = Field(default_factory=list)

    @field_validator("unit")
    @classmethod
    def _unit_has_suffix(cls, value: str) -> str:
        if not value.endswith(_UNIT_SUFFIXES) or "/" in value:
            raise ValueError(f"must be a unit name such as trader.service, got {value!r}")
        return value


class Config(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix="SUPERVISOR_", env_nested_delimiter="__", extra="forbid", frozen=True
    )
    # Fields that may hold secrets: their input value is never echoed in an error.
    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_key", "token"})

    http: HttpConfig = Field(default_factory=HttpConfig)
    targets: list[TargetConfig] = Field(min_length=1)

    @field_validator("targets")
    @classmethod
    def _names_unique(cls, value: list[TargetConfig]) -> list[TargetConfig]:
        seen: set[str] = set()
        for what in ("name", "unit"):
            seen.clear()
            for target in value:
                key = getattr(target, what)
                if key in seen:
                    raise ValueError(f"two targets share the {what} {key!r}")
                seen.add(key)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, so a unit's Environment= can override a key.
        return (env_settings, init_settings)

    def target(self, name: str) -> TargetConfig | None:
        """The named target, or None."""
        return next((t for t in self.targets if t.name == name), None)


def default_path() -> Path:
    """`$XDG_CONFIG_HOME/sidecar-supervisor/config.toml` (XDG default ~/.config)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sidecar-supervisor" / "config.toml"


def load(path: Path | None = None) -> Config:
    """Read and validate the config; raise ConfigError naming the file and every problem."""
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
    try:
        return Config(**data)
    except ValidationError as exc:
        raise ConfigError(where, describe_errors(exc, data)) from None


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
            message = str(err.get("ctx", {}).get("error", message))
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
        else:
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"
