"""`supervisor hold|release|holds`: the CLI side of holds, through the control socket.

The socket is `<state_dir>/control.sock` of the same config (`--config`, as `run` takes it),
so the command reaches the daemon that runs with that config without any key.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from supervisor import config
from supervisor.api.control import FILE_NAME, request
from supervisor.errors import EXIT_CONFIG, ConfigError
from supervisor.times import parse_duration

UNREACHABLE = 3


def run(args: argparse.Namespace) -> int:
    """Carry out one of the three commands; 0 done, 1 refused, 2 usage, 3 unreachable, 78 config."""
    try:
        payload = _payload(args)
    except ValueError as exc:
        print(f"supervisor {args.command}: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = config.load(args.config)
    except ConfigError as exc:
        print(f"{exc.path}: invalid configuration", file=sys.stderr)
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    path = cfg.state_dir / FILE_NAME
    try:
        answer = request(path, payload)
    except (OSError, ValueError) as exc:
        print(
            f"cannot reach the supervisor at {path}: {exc} (is it running with this config?)",
            file=sys.stderr,
        )
        return UNREACHABLE
    if not answer.get("ok"):
        print(f"supervisor {args.command}: {answer.get('error', 'refused')}", file=sys.stderr)
        return 1
    print(_words(args, answer))
    return 0


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "hold":
        for_s = None if args.span is None else parse_duration(args.span)
        return {"op": "hold", "target": args.target, "for_s": for_s, "reason": args.reason}
    if args.command == "release":
        if args.all == bool(args.target):
            raise ValueError("name a target or give --all")
        return {"op": "release-all"} if args.all else {"op": "release", "target": args.target}
    return {"op": "holds"}


def _words(args: argparse.Namespace, answer: dict[str, Any]) -> str:
    if args.command == "hold":
        hold = answer["hold"]
        why = f" ({hold['reason']})" if hold.get("reason") else ""
        return f"{args.target}: held until {hold['until']} by {hold['by']}{why}"
    if args.command == "release":
        released = answer.get("released", [])
        if not released:
            return "no holds" if args.all else f"{args.target}: was not held"
        return "released: " + ", ".join(released)
    holds = answer.get("holds", {})
    if not holds:
        return "no holds"
    lines = [f"{'TARGET':<20} {'UNTIL':<22} {'BY':<20} REASON"]
    for name, h in holds.items():
        lines.append(f"{name:<20} {h['until']:<22} {h['by']:<20} {h.get('reason', '')}")
    return "\n".join(lines)
