"""``python -m devtools.demo``: run a demo program, hold a port, or deliver a fault."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from devtools.demo import dashboard, faults, heartbeat, orphan

_EPILOG = f"""\
faults (python -m devtools.demo fault <program> <fault> --root <sandbox root>):
{faults.help_table()}

Signals go to the unit's MainPID from `systemctl --user show -p MainPID`, through a pidfd
that is only used when MainPID still names the same process. The flag file lives in the
program's state directory (the sandbox's home/trading/).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.demo",
        description="Demo trading programs for the systemd sandbox, and their faults.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in faults.HEARTBEAT_PROGRAMS:
        beat = sub.add_parser(name, help=f"{name}: write a heartbeat file every interval")
        beat.add_argument("--heartbeat", type=Path, required=True, help="heartbeat file")
        beat.add_argument("--state-dir", type=Path, help="flag files (default: its directory)")
        beat.add_argument("--interval", type=float, default=1.0, help="seconds between beats")
    dash = sub.add_parser("dashboard", help="dashboard: GET /health on 127.0.0.1:PORT")
    dash.add_argument("--port", type=int, required=True)
    dash.add_argument("--state-dir", type=Path, required=True, help="where flag files live")
    hold = sub.add_parser("orphan", help="hold 127.0.0.1:PORT (run it outside any unit)")
    hold.add_argument("--port", type=int, required=True)
    hold.add_argument("--fd", type=int, help="hold this inherited listening socket instead")
    fault = sub.add_parser("fault", help="make a running demo program misbehave")
    fault.add_argument("program", choices=faults.PROGRAMS)
    fault.add_argument("fault", choices=tuple(faults.FAULTS))
    fault.add_argument("--root", type=Path, help="sandbox root (default: <repo>/.sandbox)")
    return parser


def _fault(program: str, name: str, root: Path | None) -> int:
    # Imported here: the sandbox imports this package for its unit files.
    from devtools.sandbox import DEFAULT_ROOT, Sandbox, SandboxError

    try:
        Sandbox.attach(root or DEFAULT_ROOT).fault(program, name)
    except SandboxError as exc:
        print(f"fault not delivered: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the chosen program or command."""
    args = _parser().parse_args(argv)
    command: str = args.command
    if command in faults.HEARTBEAT_PROGRAMS:
        beat_file: Path = args.heartbeat
        state_dir: Path = args.state_dir or beat_file.parent
        return heartbeat.run(command, beat_file, state_dir, float(args.interval))
    if command == "dashboard":
        return dashboard.run(int(args.port), Path(args.state_dir))
    if command == "orphan":
        return orphan.run(int(args.port), fd=args.fd)
    return _fault(args.program, args.fault, args.root)


if __name__ == "__main__":
    raise SystemExit(main())
