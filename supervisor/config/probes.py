"""The probe types a target can have, as the daemon holds them (checked by `config.schema`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

_KEY = r"[^.\[\]\s]+"
_PATH = re.compile(rf"^(?:{_KEY}|\[\d+\])(?:\[\d+\])*(?:\.{_KEY}(?:\[\d+\])*)*$")
_STEP = re.compile(rf"({_KEY})|\[(\d+)\]")
OUTPUT_MAX_BYTES = 8192
UNIT_PROBES = frozenset({"resources"})  # probe types that need the target's unit


def split_path(path: str) -> tuple[str | int, ...]:
    """`feed.positions[0].size` as ("feed", "positions", 0, "size"); ValueError if malformed."""
    if not _PATH.match(path):
        raise ValueError(
            f"{path!r} is not a dotted path: use names and [N] indexes, "
            "e.g. feed.last_message_at or positions[0].size"
        )
    return tuple(int(i) if i else key for key, i in _STEP.findall(path))


@dataclass(frozen=True, kw_only=True)
class _Probe:
    """Timing and thresholds shared by every probe (Kubernetes' semantics)."""

    name: str | None = None  # id in /health; default: the type
    period_s: float = 5.0
    timeout_s: float = 2.0
    failure_threshold: int = 3
    success_threshold: int = 1
    confirm_interval_s: float = 0.5  # re-probe this soon after a first failure
    startup_grace_s: float = 60.0  # failures count after a first pass or this long; 0: off


@dataclass(frozen=True, kw_only=True)
class JsonCondition:
    """One check on a field of a JSON body; the worst one decides the probe's level."""

    path: str
    equals: Any = None  # TOML has no null, so None means "not set"
    one_of: list[Any] | None = None  # `in` in the file
    min: float | None = None
    max: float | None = None
    warn_below: float | None = None
    warn_above: float | None = None
    max_age_s: float | None = None  # a timestamp: ISO-8601 with a zone, or epoch seconds
    warn_age_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class HttpProbe(_Probe):
    """GET a URL: 2xx and 3xx pass; optionally conditions on its JSON body."""

    type: Literal["http"] = "http"
    url: str
    expect_json: dict[str, Any] | None = None  # top-level fields the body must equal
    conditions: list[JsonCondition] = field(default_factory=list)  # `json` in the file
    stuck_evidence: bool = True  # fail at once when /proc proves the port's process stuck


@dataclass(frozen=True, kw_only=True)
class TcpProbe(_Probe):
    """A TCP connect must succeed within the timeout."""

    type: Literal["tcp"] = "tcp"
    host: str = "127.0.0.1"
    port: int


@dataclass(frozen=True, kw_only=True)
class HeartbeatProbe(_Probe):
    """A file's mtime must be younger than max_age_s."""

    type: Literal["heartbeat"] = "heartbeat"
    path: Path
    max_age_s: float


@dataclass(frozen=True, kw_only=True)
class ResourcesProbe(_Probe):
    """The unit's memory and CPU (cgroup via systemd, else /proc) must stay under limits."""

    type: Literal["resources"] = "resources"
    memory_max_mb: float | None = None
    cpu_max_percent: float | None = None  # of one core, per period


@dataclass(frozen=True, kw_only=True)
class ExecProbe(_Probe):
    """Run a command (Nagios plugin API: exit 0 pass, 1 warn, 2 fail, else unknown)."""

    type: Literal["exec"] = "exec"
    command: list[str]  # an argument list; a shell only if you write ["/bin/sh", "-c", "..."]
    env: dict[str, str] = field(default_factory=dict)  # added to a minimal environment
    cwd: Path = Path("/")
    output_max_bytes: int = OUTPUT_MAX_BYTES


@dataclass(frozen=True, kw_only=True)
class DiskProbe(_Probe):
    """Used space (and used inodes) of the filesystem holding `path`, in percent."""

    type: Literal["disk"] = "disk"
    path: Path
    inodes: bool = True
    warn_percent: float = 80.0
    fail_percent: float = 90.0


@dataclass(frozen=True, kw_only=True)
class MemoryProbe(_Probe):
    """The host's memory in use (total less MemAvailable), in percent."""

    type: Literal["memory"] = "memory"
    warn_percent: float = 85.0
    fail_percent: float = 95.0


@dataclass(frozen=True, kw_only=True)
class LoadProbe(_Probe):
    """The host's load average per CPU."""

    type: Literal["load"] = "load"
    minutes: Literal[1, 5, 15] = 5
    warn_per_cpu: float = 2.0
    fail_per_cpu: float = 4.0


ProbeConfig = (
    HttpProbe
    | TcpProbe
    | HeartbeatProbe
    | ResourcesProbe
    | ExecProbe
    | DiskProbe
    | MemoryProbe
    | LoadProbe
)
