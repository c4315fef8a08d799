"""The probe types a target can have, their settings and what each must be given."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from supervisor.config.schema.base import (
    NAME_PATTERN,
    Count,
    FieldError,
    GraceSeconds,
    Percent,
    Port,
    Seconds,
    Strict,
    check_absolute,
    check_command,
    check_env,
)

_KEY = r"[^.\[\]\s]+"
_PATH = re.compile(rf"^(?:{_KEY}|\[\d+\])(?:\[\d+\])*(?:\.{_KEY}(?:\[\d+\])*)*$")
_STEP = re.compile(rf"({_KEY})|\[(\d+)\]")


def split_path(path: str) -> tuple[str | int, ...]:
    """`feed.positions[0].size` as ("feed", "positions", 0, "size"); ValueError if malformed."""
    if not _PATH.match(path):
        raise ValueError(
            f"{path!r} is not a dotted path: use names and [N] indexes, "
            "e.g. feed.last_message_at or positions[0].size"
        )
    return tuple(int(i) if i else key for key, i in _STEP.findall(path))


class _Probe(Strict):
    """Timing and thresholds shared by every probe (Kubernetes' semantics)."""

    name: str | None = Field(None, pattern=NAME_PATTERN)  # id in /health; default: the type
    period_s: Seconds = 5.0
    timeout_s: Seconds = 2.0
    failure_threshold: Count = 3
    success_threshold: Count = 1
    confirm_interval_s: Seconds = 0.5  # re-probe this soon after a first failure
    # After any start of the unit, failures do not count until this probe first passes or
    # this long has passed (Kubernetes' startup probe); 0 turns it off. The unit dying
    # always counts at once.
    startup_grace_s: GraceSeconds = 60.0
    # A timeout longer than the period is allowed: the next probe then starts when the
    # slow one ends (start-to-start periods never overlap).


class JsonCondition(Strict):
    """One check on a field of a JSON body; the worst one decides the probe's level."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    path: str
    equals: Any = None  # TOML has no null, so None means "not set"
    one_of: list[Any] | None = Field(None, alias="in")
    min: float | None = None
    max: float | None = None
    warn_below: float | None = None
    warn_above: float | None = None
    max_age_s: Seconds | None = None  # a timestamp: ISO-8601 with a zone, or epoch seconds
    warn_age_s: Seconds | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        split_path(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        checks = ("min", "max", "warn_below", "warn_above", "max_age_s", "warn_age_s")
        if (
            self.equals is None
            and self.one_of is None
            and all(getattr(self, c) is None for c in checks)
        ):
            raise ValueError(
                "say what to check: equals, in, min, max, warn_below, warn_above, "
                "max_age_s or warn_age_s"
            )
        for low, high, why in (
            ("min", "max", "min must not be above max"),
            ("min", "warn_below", "warn_below must be above min: a warning comes first"),
            ("warn_above", "max", "warn_above must be below max: a warning comes first"),
            ("warn_age_s", "max_age_s", "warn_age_s must be below max_age_s"),
        ):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise FieldError(high, why)
        return self


class HttpProbe(_Probe):
    """GET a URL: 2xx and 3xx pass; optionally conditions on its JSON body."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")
    expect_json: dict[str, Any] | None = None  # top-level fields the body must equal
    conditions: list[JsonCondition] = Field(default_factory=list, alias="json")
    # Fail at once, not after failure_threshold timeouts, when /proc proves the target's
    # process holding the URL's port stuck (stopped, or no CPU while connections queue).
    stuck_evidence: bool = True


class TcpProbe(_Probe):
    """A TCP connect must succeed within the timeout."""

    type: Literal["tcp"]
    host: str = "127.0.0.1"
    port: Port


class HeartbeatProbe(_Probe):
    """A file's mtime must be younger than max_age_s."""

    type: Literal["heartbeat"]
    path: Path
    max_age_s: Seconds

    @field_validator("path")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class ResourcesProbe(_Probe):
    """The unit's memory and CPU (cgroup via systemd, else /proc) must stay under limits."""

    type: Literal["resources"]
    memory_max_mb: Annotated[float, Field(gt=0)] | None = None
    cpu_max_percent: Annotated[float, Field(gt=0)] | None = None  # of one core, per period

    @model_validator(mode="after")
    def _some_limit(self) -> Self:
        if self.memory_max_mb is None and self.cpu_max_percent is None:
            raise ValueError("set memory_max_mb, cpu_max_percent or both")
        return self


OUTPUT_MAX_BYTES = 8192


class ExecProbe(_Probe):
    """Run a command (Nagios plugin API: exit 0 pass, 1 warn, 2 fail, else unknown)."""

    type: Literal["exec"]
    command: list[str]  # an argument list; a shell only if you write ["/bin/sh", "-c", "..."]
    env: dict[str, str] = Field(default_factory=dict)  # added to a minimal environment
    cwd: Path = Path("/")
    output_max_bytes: Annotated[int, Field(ge=256, le=1 << 20)] = OUTPUT_MAX_BYTES

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        return check_command(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return check_env(value)

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: Path) -> Path:
        return check_absolute(value)


class _Levels(_Probe):
    """A figure in percent with a warning and a failure threshold."""

    warn_percent: Percent = 80.0
    fail_percent: Percent = 90.0

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.warn_percent > self.fail_percent:
            raise FieldError("warn_percent", "must not be above fail_percent")
        return self


class DiskProbe(_Levels):
    """Used space (and used inodes) of the filesystem holding `path`, in percent."""

    type: Literal["disk"]
    path: Path
    inodes: bool = True

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return check_absolute(value)


class MemoryProbe(_Levels):
    """The host's memory in use (total less MemAvailable), in percent."""

    type: Literal["memory"]
    warn_percent: Percent = 85.0
    fail_percent: Percent = 95.0


class LoadProbe(_Probe):
    """The host's load average per CPU."""

    type: Literal["load"]
    minutes: Literal[1, 5, 15] = 5
    warn_per_cpu: Annotated[float, Field(gt=0)] = 2.0
    fail_per_cpu: Annotated[float, Field(gt=0)] = 4.0

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.warn_per_cpu > self.fail_per_cpu:
            raise FieldError("warn_per_cpu", "must not be above fail_per_cpu")
        return self


ProbeConfig = Annotated[
    HttpProbe
    | TcpProbe
    | HeartbeatProbe
    | ResourcesProbe
    | ExecProbe
    | DiskProbe
    | MemoryProbe
    | LoadProbe,
    Field(discriminator="type"),
]
UNIT_PROBES = frozenset({"resources"})  # probe types that need the target's unit
