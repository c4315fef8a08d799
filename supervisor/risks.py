"""What a valid config still leaves risky: the warnings `supervisor check-config` prints.

Pure: the caller passes the environment and the token file's mode (reading them is I/O).
Each warning starts with the dotted path of the setting and, when a SUPERVISOR_* variable
set it, names that variable: an override in a unit's Environment= is easy to forget.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from supervisor.config import Config

ENV_PREFIX = "SUPERVISOR_"


def overrides(env: Mapping[str, str]) -> dict[str, str]:
    """SUPERVISOR_* variables by the dotted path they set (names only: values may be secret)."""
    return {
        name[len(ENV_PREFIX) :].lower().replace("__", "."): name
        for name in sorted(env)
        if name.upper().startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX)
    }


def warnings(cfg: Config, env: Mapping[str, str], token_mode: int | None = None) -> list[str]:
    """Every risky choice in `cfg`, one line each; `token_mode` is the token file's st_mode."""
    found: list[tuple[str, str]] = []
    if cfg.dry_run:
        found.append(("dry_run", "true: recovery is decided and logged, never carried out"))
    for i, t in enumerate(cfg.targets):
        if t.unit is not None and not t.recovery.enabled:  # a host target has nothing to restart
            path = f"targets[{i}]({t.name}).recovery.enabled"
            found.append((path, f"false: {t.name} is never restarted"))
    if not cfg.alerts.enabled:
        found.append(("alerts.enabled", "false: no alert is sent, failures are only logged"))
    elif cfg.alerts.telegram is None:
        found.append(("alerts.telegram", "not set: alerts are only logged, nobody is told"))
    if not _loopback(cfg.http.host):
        found.append(("http.host", f"{cfg.http.host!r} {BEYOND_LOOPBACK}"))
    telegram = cfg.alerts.telegram
    if telegram and telegram.token_file and token_mode is not None and token_mode & 0o077:
        mode = f"{token_mode & 0o777:04o}"
        what = f"{telegram.token_file} is readable by group or others (mode {mode}): chmod 600 it"
        found.append(("alerts.telegram.token_file", what))
    by_env = overrides(env)
    return [f"{path}: {text}{_set_by(path, by_env)}" for path, text in found]


BEYOND_LOOPBACK = (
    "listens beyond this machine: anyone who can reach it reads /health and /metrics "
    '(keep "127.0.0.1", or firewall the port and list the names clients use in '
    "http.allowed_hosts)"
)


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost: it may resolve to anything


def _set_by(path: str, by_env: Mapping[str, str]) -> str:
    """ " (set by SUPERVISOR_X)" when a variable sets `path` or a table above it."""
    parts = re.sub(r"\[\d+\](\([^)]*\))?", "", path).split(".")  # targets[0](a).x -> targets.x
    for depth in range(len(parts), 0, -1):
        name = by_env.get(".".join(parts[:depth]))
        if name is not None:
            return f" (set by {name} in the environment)"
    return ""
