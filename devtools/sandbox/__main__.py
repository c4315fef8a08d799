"""`python -m devtools.sandbox up|down|status|env`."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from devtools.sandbox.fleet import RESTART_VALUES
from devtools.sandbox.manager import DEFAULT_ROOT, Sandbox
from devtools.sandbox.procs import SandboxError, SandboxUnavailable

# --- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.sandbox",
        description="A systemd user manager with the demo trading fleet, for tests and demos.",
    )
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="default: %(default)s")
    parser.add_argument("--dashboard-port", type=int, help="default: recorded, else 5050")
    parser.add_argument("--restart", choices=sorted(RESTART_VALUES), help="units' Restart=")
    parser.add_argument(
        "--user",
        help="run the manager and fleet as this unprivileged user (made when missing), in "
        "a cgroup subtree of their own; default: as ourselves (root), one sandbox per machine",
    )
    return parser


def _run(command: str, sandbox: Sandbox) -> None:
    if command == "up":
        started = time.monotonic()
        sandbox.up()
        print(sandbox.status())
        root = "" if sandbox.root == DEFAULT_ROOT else f" --root {shlex.quote(str(sandbox.root))}"
        print(
            f'up in {time.monotonic() - started:.2f}s; then: eval "$(scripts/sandbox.sh env{root})"'
        )
    elif command == "down":
        started = time.monotonic()
        sandbox.down()
        print(f"down in {time.monotonic() - started:.2f}s")
    elif command == "status":
        print(sandbox.status())
    else:
        for key, value in sandbox.env().items():
            print(f"export {key}={shlex.quote(value)}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devtools.sandbox up|down|status|env``."""
    args = _parser().parse_args(argv)
    try:
        sandbox = Sandbox.attach(
            args.root, dashboard_port=args.dashboard_port, restart=args.restart
        )
        if args.user and args.command == "up":
            sandbox = Sandbox(
                args.root,
                dashboard_port=sandbox.dashboard_port,
                restart=sandbox.restart,
                user=args.user,
            )
        _run(args.command, sandbox)
    except SandboxUnavailable as exc:
        print(f"sandbox unavailable: {exc}", file=sys.stderr)
        return 2
    except (SandboxError, ValueError, TimeoutError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
