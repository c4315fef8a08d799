"""What a run does (full or --quick), the settings every tool gets, its deadlines and errors."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
SUPERVISOR_BIN = REPO / ".venv" / "bin" / "supervisor"

# The probe defaults (supervisor/config.py) and the same settings given to Monit.
PERIOD_S = 5.0
TIMEOUT_S = 2.0
FAILURE_THRESHOLD = 3
HEARTBEAT_MAX_AGE_S = 5  # the stale-heartbeat case, for both tools
WATCHDOG_USEC = 2_000_000  # under load: the supervisor must ping at least every 1 s
WATCHDOG_SLACK_S = 0.25
FLEET_PROBES = 3  # fleet_config: one probe per demo target
SCENARIOS = ("dead", "hung", "stale", "orphan")
SECTIONS = (
    "startup",
    "idle",
    "detection",
    "supervisor",
    "monit",
    "systemd",
    "load",
    "history",
    "hang",
)
BURST_EVENTS = 1_000  # recorded at once while the watchdog pings

# Deadlines: every wait ends, with an error that says what it waited for.
READY_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 30.0
DETECT_TIMEOUT_S = 10.0
RECOVERY_TIMEOUT_S = 60.0
POLL_S = 0.01

STARTED = time.monotonic()


class BenchError(Exception):
    """A benchmark step failed; the message says which and why."""


def say(message: str) -> None:
    """Progress on stderr (stdout carries only the result)."""
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Settings:
    """How much of everything a run does (full or --quick)."""

    quick: bool
    startup_reps: int
    idle_windows: int
    idle_window_s: float
    idle_settle_s: float
    kills: int
    reps: dict[str, int]  # recovery repetitions per scenario (supervisor, Monit, systemd)
    not_recovered_wait_s: float  # how long a tool that cannot recover is given to prove it
    wrk_s: int
    rss_pairs: int  # history on / off supervisors started side by side, one RSS reading each
    bursts: int  # bursts of BURST_EVENTS events, each timed across a watchdog ping
    history_events: int = 100_000  # stored before `/` and /events are loaded
    smoke: bool = False  # the test suite's run: every section once, figures not judged
    hang_reps: int = 7  # repetitions per hang and tool in the hang section
    # How often the supervisor probes and Monit polls in the recovery and hang sections: the
    # defaults, but for the smoke run, whose waits for a hang or a stale heartbeat it shortens.
    period_s: float = PERIOD_S

    @classmethod
    def make(cls, quick: bool) -> Settings:
        """The --quick run, or the full run."""
        if quick:
            return cls(
                quick=True,
                startup_reps=3,
                idle_windows=3,
                idle_window_s=5.0,
                idle_settle_s=2.0,
                kills=5,
                reps={"dead": 2, "hung": 1, "stale": 1, "orphan": 1},
                not_recovered_wait_s=6.0,
                wrk_s=3,
                rss_pairs=3,
                bursts=3,
                hang_reps=2,
            )
        return cls(
            quick=False,
            startup_reps=7,
            idle_windows=5,
            idle_window_s=20.0,  # /proc counts 10 ms ticks: 20 s resolves 0.05 % of a core
            idle_settle_s=10.0,
            kills=20,
            reps={"dead": 5, "hung": 5, "stale": 5, "orphan": 5},
            not_recovered_wait_s=30.0,
            wrk_s=10,
            rss_pairs=5,
            bursts=10,
        )

    @classmethod
    def make_smoke(cls) -> Settings:
        """Every section at its smallest, so the test suite runs each one (figures too few to
        judge: it proves the bench still works, not how fast the supervisor is). Probes and
        Monit run every second where the bench waits for them to find a fault."""
        return replace(
            cls.make(quick=True),
            startup_reps=1,
            idle_windows=1,
            idle_window_s=1.0,
            idle_settle_s=0.5,
            kills=1,
            reps={"dead": 1, "hung": 1, "stale": 1, "orphan": 1},
            not_recovered_wait_s=2.0,
            wrk_s=1,
            rss_pairs=1,
            bursts=1,
            history_events=2_000,
            hang_reps=1,
            period_s=1.0,
            smoke=True,
        )
