"""What goes into a backup and what a restore says: secrets left out, contents in words. Pure.

The archive holds the history (a consistent SQLite copy), the state file whole (incidents,
silences, outbox, recovery attempts, holds: whatever this version keeps) and the config with
every secret line left out. A config whose secret cannot be cut out line by line (an inline
table, a multi-line string) is refused rather than archived with the secret in it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from supervisor.times import iso

FORMAT = 1  # the manifest's `format`: what a restore knows how to read
MANIFEST = "manifest.json"
HISTORY = "history.sqlite3"
STATE = "state.json"
CONFIG = "config.toml"
MEMBERS = (MANIFEST, HISTORY, STATE, CONFIG)
SECRET_KEYS = ("api_key", "token")  # the config's secrets (Config.secret_fields)
_SECRET_LINE = re.compile(
    r"^(\s*)((?:[A-Za-z0-9_-]+\s*\.\s*)*(" + "|".join(SECRET_KEYS) + r"))\s*=.*$"
)
_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")


class SecretLeftError(ValueError):
    """The config's secret could not be left out safely."""


def strip_secrets(text: str, secrets: Iterable[str]) -> tuple[str, list[str]]:
    """The config without its secret lines, and the dotted keys left out.

    Each `api_key = ...` or `token = ...` line becomes a comment saying it was left out; the
    result must still parse and contain none of `secrets` (the values in force).
    """
    out, removed, table = [], [], ""
    for line in text.splitlines():
        if header := _TABLE.match(line):
            table = header.group(1).replace(" ", "")
        match = _SECRET_LINE.match(line)
        if match is None:
            out.append(line)
            continue
        key = match.group(2).replace(" ", "")
        removed.append(f"{table}.{key}" if table else key)
        out.append(f"{match.group(1)}# {key} = ... (left out of the backup: a secret)")
    stripped = "\n".join(out) + "\n"
    _verify(stripped, [s for s in secrets if s])
    return stripped, removed


def _verify(stripped: str, secrets: list[str]) -> None:
    try:
        data = tomllib.loads(stripped)
    except tomllib.TOMLDecodeError as exc:
        raise SecretLeftError(
            f"the config does not parse with its secrets left out: {exc}"
        ) from None
    if left := sorted(_secret_paths(data)):
        raise SecretLeftError(
            f"cannot leave out {', '.join(left)} line by line: write the key on a line of its own "
            "(or use token_file)"
        )
    if any(secret in stripped for secret in secrets):
        raise SecretLeftError("a secret value is still in the config after leaving out its key")


def _secret_paths(node: Any, where: str = "") -> Iterable[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key in SECRET_KEYS:
                yield path
            yield from _secret_paths(value, path)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _secret_paths(value, f"{where}[{i}]")


def state_summary(state: Mapping[str, Any]) -> str:
    """The state file's contents in words: `2 open incident(s), outbox 3 message(s), ...`."""
    alerts = state.get("alerts")
    alerts = alerts if isinstance(alerts, Mapping) else {}
    outbox = state.get("outbox")
    messages = outbox.get("messages") if isinstance(outbox, Mapping) else None
    parts = [
        f"{_count(alerts.get('incidents'))} incident(s)",
        f"{_count(alerts.get('silences'))} silence(s)",
        f"outbox {_count(messages)} message(s)",
        f"recovery state of {_count(state.get('recovery'))} target(s)",
    ]
    targets = state.get("targets")  # holds live with the health model's saved targets
    holds = targets.get("holds") if isinstance(targets, Mapping) else state.get("holds")
    if holds is not None:
        parts.append(f"{_count(holds)} hold(s)")
    return ", ".join(parts)


def _count(value: object) -> int:
    return len(value) if isinstance(value, list | dict) else 0


def history_summary(events: int, spans: int, first: float | None, last: float | None) -> str:
    """The history's contents in words."""
    when = f", {iso(first)} .. {iso(last)}" if first is not None and last is not None else ""
    return f"{events:,} event(s), {spans:,} status span(s){when}"
