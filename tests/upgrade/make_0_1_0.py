"""Writes `tests/upgrade/0.1.0/`: a state file and a history database as sidecar-supervisor
0.1.0 wrote them, by 0.1.0's own code (its build, state keeper and history store).

Not a test: it was run once, against the last 0.1.0 commit, and its output is checked in:

    git archive 7ed0603 supervisor | tar -x -C /tmp/v010
    PYTHONPATH=/tmp/v010 .venv/bin/python tests/upgrade/make_0_1_0.py tests/upgrade/0.1.0

The files hold what a user's 0.1.0 leaves behind after a rough day: an open incident on the
trader (alerted, escalated), a silence on the dashboard, an alert for chat 4242 still in the
outbox, three restart attempts on the trader and a give-up, and a history with the trader
killed, restarted and passing again (events and status spans).
"""

from __future__ import annotations

import asyncio
import sys
import time
import tomllib
from pathlib import Path

import supervisor
from supervisor.alerts.policy import Incident
from supervisor.app.build import Hooks, build
from supervisor.config import Config
from supervisor.history.events import Kind
from supervisor.model import ActiveState, SystemClock, UnitState

BASE = 1_780_000_000.0  # 2026-05-28: a fixed past, so the files are the same on every run
TARGETS = """
[[targets]]
name = "trader"
unit = "trader.service"
critical = true
[[targets]]
name = "dashboard"
unit = "dashboard.service"
"""


class _PastClock(SystemClock):
    """Wall-clock time set by hand (monotonic stays real: 0.1.0 keeps both)."""

    now = BASE

    def time(self) -> float:
        return self.now


def config(state_dir: Path) -> Config:
    text = f'state_dir = "{state_dir}"\n[alerts.telegram]\ntoken = "1:x"\nchat_ids = [4242]\n'
    return Config(**tomllib.loads(text + TARGETS))


async def write(out: Path) -> None:
    clock = _PastClock()
    parts = build(config(out), clock, {}, Hooks(asyncio.Event(), lambda _code: None))
    parts.history.start()
    model = parts.in_force.fleet.model
    unit = UnitState(unit="trader.service", active_state=ActiveState.ACTIVE, main_pid=4127)
    model.apply_unit("trader", unit)
    parts.history.unit("trader", unit)
    parts.history.observe(model.snapshot())
    clock.now = BASE + 600
    dead = UnitState(unit="trader.service", active_state=ActiveState.FAILED, sub_state="failed")
    model.apply_unit("trader", dead)
    parts.history.unit("trader", dead)
    parts.history.observe(model.snapshot())
    parts.history.record(Kind.RECOVERY, "restart trader (attempt 1/3): done", "trader", attempt=1)
    clock.now = BASE + 660
    model.apply_unit("trader", unit)
    parts.history.unit("trader", unit)
    parts.history.observe(model.snapshot())
    clock.now = BASE + 900
    parts.policy.incidents["trader:health"] = Incident(
        key="trader:health",
        target="trader",
        opened_at=BASE + 600,
        severity="critical",
        notified_at=BASE + 610,
        notified_severity="critical",
        reason="unit failed (result signal, signal=KILL)",
        actions=["restart: done"],
    )
    parts.policy.silences["dashboard"] = BASE + 10 * 365 * 86_400  # still silenced at upgrade
    parts.alerts.outbox.add(4242, "0.1.0 left this alert undelivered", BASE + 890)
    trader = parts.in_force.fleet.repairer.policies["trader"]
    trader.restore({"attempts": [BASE + 600, BASE + 610, BASE + 640], "gave_up_until": None,
                    "slow_retry": False})  # fmt: skip
    parts.alerts.offset = 77
    parts.keeper.save_now(running=False, final=True)
    parts.history.close()


def main() -> None:
    if supervisor.__version__ != "0.1.0":
        raise SystemExit(f"run this with 0.1.0's code on PYTHONPATH, not {supervisor.__version__}")
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(write(out))
    for name in ("lock", "last-valid-config.toml"):
        (out / name).unlink(missing_ok=True)
    print(f"wrote {sorted(p.name for p in out.iterdir())} at {time.ctime()}")


if __name__ == "__main__":
    main()
