"""``python -m devtools.chaos [--minutes 10] [--seed N] [--short]``: see `devtools.chaos`."""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devtools.chaos.control import Say
from devtools.chaos.report import as_json, table
from devtools.chaos.run import ChaosError, chaos
from devtools.chaos.settings import Settings
from devtools.chaos.verdict import Verdict, judge
from devtools.net import free_port
from devtools.sandbox import Sandbox, SandboxError, SandboxUnavailable
from devtools.sandbox.waiting import up_when_free

EXIT_FAILED = 1  # a check failed
EXIT_BROKEN = 2  # the run could not be done
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.chaos",
        description="Run the real supervisor against the sandbox fleet and inject random faults; "
        "print what it detected, repaired and alerted, and exit 1 if a check failed. "
        "It starts its own private systemd --user sandbox: never point it at a production fleet.",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="of faults (default 10)")
    parser.add_argument("--seed", type=int, help="repeat a run (default: a new random seed)")
    parser.add_argument("--short", action="store_true", help="about 2 minutes, fewer kinds")
    parser.add_argument(
        "--soak",
        action="store_true",
        help="one supervisor life under two faults a minute (kill -9 of trader and "
        "position-monitor, a hung dashboard), no supervisor kills: its footprint over hours",
    )
    parser.add_argument(
        "--user",
        help="run the sandbox's manager, fleet and the supervisor as this unprivileged user, "
        "in a cgroup subtree of their own (made when missing; needs root)",
    )
    parser.add_argument("--work", type=Path, help="logs, config, state, report (default: /tmp)")
    parser.add_argument(
        "--wait", type=float, default=1800.0, help="for another sandbox to go (default 1800 s)"
    )
    return parser


def run_chaos(
    box: Sandbox, *, seed: int, short: bool, minutes: float, work: Path, soak: bool = False
) -> Verdict:
    """One run against `box` (up); prints the table and writes `work`/report.json."""
    say = Say()
    settings = Settings.soak(minutes) if soak else Settings.make(minutes, short)
    mode = "short" if short else f"{minutes:g} minutes{' soak' if soak else ''}"
    say(f"chaos run: seed {seed} ({mode}), work {work}")
    record = chaos(box, settings, seed, work, say)
    verdict = judge(record)
    report = table(record, verdict, mode)
    (work / "report.txt").write_text(report + "\n")
    (work / "report.json").write_text(json.dumps(as_json(record, verdict), indent=1) + "\n")
    print(report, flush=True)
    again = " --short" if short else f" --minutes {minutes:g}{' --soak' if soak else ''}"
    print(f"\nrepeat with: python -m devtools.chaos --seed {seed}{again}")
    return verdict


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up exactly like Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, bring up a sandbox, run, take everything down; returns the exit status."""
    args = _parser().parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    work = args.work or Path(f"/tmp/sidecar-chaos-{seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    work.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    # Even when started with SIGINT ignored (a background job of a script): Ctrl-C cleans up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    box = Sandbox(work / "sandbox", dashboard_port=free_port(), restart="no", user=args.user)
    try:
        up_when_free(box, args.wait, lambda why: print(f"waiting: {why}", file=sys.stderr))
        verdict = run_chaos(
            box, seed=seed, short=args.short, minutes=args.minutes, work=work, soak=args.soak
        )
        return 0 if verdict.ok else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: everything the run started is being stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ChaosError, SandboxUnavailable, SandboxError) as exc:
        print(f"chaos run not done: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    finally:
        # A second Ctrl-C must not leave the sandbox half torn down.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        box.down()


if __name__ == "__main__":
    raise SystemExit(main())
