"""`supervisor why TARGET`: the target's last failure, its cause and its last lines.

Read from the daemon's `/events` (the history), so it answers after the fact, after a
restart of the supervisor too, as long as the history keeps the events.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from supervisor.times import local_stamp

EXIT_FOUND, EXIT_NONE, EXIT_UNREACHABLE = 0, 1, 3
_PAGE = 200  # events read back to find the last failure


def add_parser(sub: Any) -> None:
    """The `why` subcommand."""
    why = sub.add_parser("why", help="explain a target's last failure: cause and last lines")
    why.add_argument("target")
    why.add_argument("--url", help="the supervisor's base URL (default: from the config)")
    why.add_argument("--config", type=Path)


def run(args: argparse.Namespace, base_url: Callable[[Path | None], str]) -> int:
    """Print the explanation; 0 when a failure was found, 1 when none, 3 when unreachable."""
    base = args.url or base_url(args.config)
    query = urllib.parse.urlencode({"target": args.target, "limit": _PAGE})
    try:
        with urllib.request.urlopen(f"{base}/events?{query}", timeout=5) as resp:
            page = json.loads(resp.read())
    except (OSError, ValueError) as exc:  # HTTPError is an OSError
        print(f"cannot read {base}/events: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    text = explain(args.target, page.get("events", []))
    print(text or f"{args.target}: no failure in the history")
    return EXIT_FOUND if text else EXIT_NONE


def explain(target: str, events: Sequence[Mapping[str, Any]]) -> str:
    """The last failure among `events` (newest first) in words; "" if there is none."""
    death = next((e for e in events if _is_death(e)), None)
    failing = next((e for e in events if _is_failing(e)), None)
    if death is None and failing is None:
        return ""
    if failing is not None and (death is None or failing["id"] > death["id"] + _SAME_US):
        # The last failure was no death (a hang, a failed probe): its reason says why, and
        # a hang's evidence (what the probe saw, the process in /proc) follows.
        data = failing["data"]
        said = f"{target}: failing since {_when(failing)}: {data.get('reason', '')}"
        if not isinstance(data.get("cause"), dict):
            return said
        return "\n".join([said, f"  cause: {data['cause']['words']}", *_log(data, "evidence")])
    assert death is not None
    data = death["data"]
    lines = [f"{target}: {data['cause']['words']}", f"  when: {_when(death)}"]
    lines.append(
        f"  unit: {data.get('unit', '?')}, result {data.get('result', '?')}, "
        f"restarts {data.get('nRestarts', 0)}"
    )
    return "\n".join(lines + _log(data))


def _log(data: Mapping[str, Any], heading: str = "last lines") -> list[str]:
    """A failure's last lines (or evidence), indented, or why there are none."""
    lines: list[str] = []
    log = data.get("log", {})
    if log.get("lines"):
        lines.append(f"  {heading} ({log.get('source', '')}):")
        lines.extend(f"    {line}" for line in log["lines"])
    elif log.get("unavailable"):
        lines.append(f"  no log lines: {log['unavailable']}")
    return lines


_SAME_US = 5_000_000  # a status change within 5 s of a death is that death's


def _is_death(event: Mapping[str, Any]) -> bool:
    data = event.get("data") or {}
    return event.get("kind") == "unit" and isinstance(data.get("cause"), dict)


def _is_failing(event: Mapping[str, Any]) -> bool:
    data = event.get("data") or {}
    return event.get("kind") == "status" and data.get("to") == "fail"


def _when(event: Mapping[str, Any]) -> str:
    return local_stamp(str(event.get("time", "")), "%c")
