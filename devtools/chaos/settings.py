"""How a run is shaped (the long run or the test suite's short one) and the supervisor's config
for it."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from devtools.chaos.plan import SHORT_KINDS, SOAK_PAIRS, SPECS, Kind, Shape
from devtools.sandbox import Sandbox

CHATS = (1111, 2222)  # two chats: every alert must reach each, once
MEMORY_MARGIN_MB = 64  # the resources probe's limit over a unit's baseline (a fault adds 128)
BASE_COOLDOWN_S = 3600.0  # no reminders within a run of up to an hour: every alert is counted
MAX_ATTEMPTS = 4  # within the recovery window: a crash loop is given up on after about 12 s
BACKOFF_S = (0, 2, 5)  # before each attempt (the last one repeats)


@dataclass(frozen=True)
class Settings:
    """Everything that differs between the long run and the short one."""

    short: bool
    shape: Shape
    period_s: float  # probe timing of every target
    timeout_s: float
    heartbeat_max_age_s: float
    repair_cap_s: float  # after its cause is gone, a fault has this long to be repaired
    start_wait_s: float  # a planned fault waits this long for its target, then is skipped
    settle_cap_s: float  # at the end, everything has this long to settle
    lull_every_s: float | None  # how often new faults pause until everything is quiet
    # A flapping target's "stable again" comes this long after its last failure: well within
    # the time the run gives itself to settle (the default, 5 min, is longer than the run's).
    flap_quiet_s: float
    # Recovery's window for its MAX_ATTEMPTS (the short run's is shorter, so that a target
    # whose budget the run waits for is free sooner; a crash loop still spends it in 12 s).
    recovery_window_s: float = 30.0
    # The warm-up ends with a supervisor kill (its restart notice, its reconnects); a soak
    # watches one process for hours and never kills it.
    warm_up_kill: bool = True

    @property
    def probe_allowance_s(self) -> float:
        """The longest a probe takes to see a fault of its target: a heartbeat's age limit and
        two rounds (the run measured at most 7.1 s in the short run, whose allowance is 8 s)."""
        return self.heartbeat_max_age_s + 2 * self.period_s

    @classmethod
    def make(cls, minutes: float, short: bool) -> Settings:
        """The short run (about 2 minutes in all) or a long run of `minutes` of faults."""
        if short:
            return cls(
                short=True,
                shape=Shape(60.0, (1.5, 4.0), SHORT_KINDS, hold_scale=0.4),
                period_s=2.0,
                timeout_s=1.0,
                heartbeat_max_age_s=4.0,
                repair_cap_s=40.0,
                start_wait_s=30.0,  # longer than the recovery window a fault may wait out
                settle_cap_s=45.0,
                lull_every_s=None,
                flap_quiet_s=15.0,
                recovery_window_s=15.0,
            )
        return cls(
            short=False,
            shape=Shape(minutes * 60.0, (3.0, 12.0), tuple(SPECS)),
            period_s=5.0,  # the defaults users run with
            timeout_s=2.0,
            heartbeat_max_age_s=6.0,
            repair_cap_s=120.0,
            start_wait_s=90.0,
            settle_cap_s=180.0,
            lull_every_s=120.0,
            flap_quiet_s=60.0,
        )

    @classmethod
    def soak(cls, minutes: float) -> Settings:
        """One supervisor living `minutes` under two faults a minute (see `SOAK_PAIRS`), with
        the probe timing users run with: how its footprint moves over hours."""
        long = cls.make(minutes, short=False)
        shape = Shape(minutes * 60.0, (25.0, 35.0), (Kind.KILL, Kind.HANG), pairs=SOAK_PAIRS)
        return replace(long, shape=shape, warm_up_kill=False)


@dataclass(frozen=True)
class Fleet:
    """What the supervisor's config points at."""

    box: Sandbox
    state_dir: Path
    http_port: int
    bot_url: str
    bot_token: str
    memory_max_mb: dict[str, int]


def critical_targets(generation: int) -> tuple[str, ...]:
    """The targets marked critical in the `generation`th config the run writes (0: the first).

    Each reload flips position-monitor's `critical`, which /health shows: the run sees the
    reload take effect. It changes only an alert's severity and the HTTP code of /health while
    that target fails (both accepted by every check), never a probe's or recovery's settings.
    """
    return ("position-monitor", "trader") if generation % 2 else ("trader",)


def config_text(s: Settings, fleet: Fleet, variant: int = 0, generation: int = 0) -> str:
    """The supervisor's config; a reload variant changes [alerts] and, by its `generation`,
    which targets are critical (see `critical_targets`)."""
    box = fleet.box
    critical = critical_targets(generation)
    cooldown = BASE_COOLDOWN_S + (1 if variant % 3 == 1 else 0)
    per_hour = 999 if variant % 3 == 2 else 1000  # the most it allows: nothing held back
    head = f"""state_dir = {json.dumps(str(fleet.state_dir))}
[http]
host = "127.0.0.1"
port = {fleet.http_port}
[alerts]
max_per_hour = {per_hour}
cooldown_s = {cooldown}
flap_quiet_s = {s.flap_quiet_s}
[alerts.telegram]
token = {json.dumps(fleet.bot_token)}
chat_ids = [{", ".join(map(str, CHATS))}]
api_url = {json.dumps(fleet.bot_url)}
timeout_s = 5
"""
    url = f"http://127.0.0.1:{box.dashboard_port}/health"
    probes = {
        "trader": _heartbeat(box.heartbeat_path("trader"), s),
        "dashboard": f'  [[targets.probes]]\n  type = "http"\n  url = "{url}"\n',
        "position-monitor": _heartbeat(box.heartbeat_path("position-monitor"), s),
    }
    return head + "".join(
        _target(name, body, s, fleet, name in critical) for name, body in probes.items()
    )


def _heartbeat(path: Path, s: Settings) -> str:
    return (
        f'  [[targets.probes]]\n  type = "heartbeat"\n  path = {json.dumps(str(path))}\n'
        f"  max_age_s = {s.heartbeat_max_age_s}\n"
    )


def _target(name: str, probes: str, s: Settings, fleet: Fleet, critical: bool) -> str:
    dashboard = name == "dashboard"
    actions = '["restart", "free-port"]' if dashboard else '["restart"]'
    return f"""[[targets]]
name = "{name}"
unit = "{name}.service"
critical = {"true" if critical else "false"}
ports = [{fleet.box.dashboard_port if dashboard else ""}]
period_s = {s.period_s}
timeout_s = {s.timeout_s}
{probes}  [[targets.probes]]
  type = "resources"
  memory_max_mb = {fleet.memory_max_mb[name]}
  [targets.recovery]
  actions = {actions}
  max_attempts = {MAX_ATTEMPTS}
  window_s = {s.recovery_window_s:g}
  backoff_s = [{", ".join(map(str, BACKOFF_S))}]
  retry_after_give_up_s = 20
"""
