"""The supervision pass: recovery, the log of status changes, alerts, state, STATUS=, watchdog.

One pass per wake-up (a unit or probe changed a status, an action ended) or at least every
interval. The watchdog is pinged only after a completed pass: a stuck loop stops the pings
and systemd restarts us.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from supervisor.alerts.delivery import AlertService
from supervisor.alerts.policy import AlertPolicy
from supervisor.api import render
from supervisor.app.fleet import Fleet
from supervisor.app.holding import HoldDesk
from supervisor.app.persist import StateKeeper
from supervisor.guard.breaker import Breaker
from supervisor.happenings import Blocked, Emit
from supervisor.history.recorder import Recorder
from supervisor.model import Snapshot, Status
from supervisor.watch.systemd import Systemd

log = logging.getLogger(__name__)

PASS_INTERVAL_S = 5.0  # the longest sleep when nothing wakes the loop


def pass_interval(watchdog_s: float | None) -> float:
    """The longest wait between passes: often enough for the watchdog's pings, if it is on."""
    return PASS_INTERVAL_S if watchdog_s is None else min(PASS_INTERVAL_S, watchdog_s)


@dataclass
class Supervision:
    """The loop and what it reads; `passes` counts completed passes (tests wait on it)."""

    fleet: Fleet  # a reload hands the new one (`use`)
    breaker: Breaker  # a reload reconfigures it in place
    systemd: Systemd
    policy: AlertPolicy
    alerts: AlertService
    keeper: StateKeeper
    # Handed in as callbacks (uvicorn's `callback_notify`): the loop knows nothing of who
    # listens. `ping` after each completed pass (the watchdog), `show_status` its one line.
    ping: Callable[[], None]
    show_status: Callable[[str], None]
    wake: asyncio.Event
    history: Recorder
    desk: HoldDesk
    emit: Emit
    interval_s: float = PASS_INTERVAL_S  # the longest wait between passes
    passes: int = 0

    def __post_init__(self) -> None:
        self._statuses: dict[str, Status] = {}
        self._blocked: dict[str, str] = {}  # target -> the root it is blocked by

    def use(self, fleet: Fleet) -> None:
        """Supervise `fleet` from now on (a reload's new one)."""
        self.fleet = fleet

    def forget_statuses(self) -> None:
        """Log every target's status again at the next pass (after a reload)."""
        self._statuses.clear()

    async def run(self) -> None:
        """Forever; one bad pass is logged and the next one runs."""
        interval = wait = self.interval_s
        while True:
            try:
                async with asyncio.timeout(wait):
                    await self.wake.wait()
            except TimeoutError:
                pass
            self.wake.clear()
            wait = interval
            try:
                backoff_ends = self.step()
                if backoff_ends is not None:
                    wait = min(wait, backoff_ends)
            except Exception:  # one bad pass must never stop supervision
                log.exception("supervision pass failed")
            self.ping()
            self.passes += 1

    def step(self) -> float | None:
        """One pass; returns seconds until a backoff, grace or hold ends, if one is running."""
        fleet = self.fleet
        self.desk.expire()
        timed = fleet.model.tick()  # graces ending, flapping settling, holds ending
        # Status changes are recorded before recovery acts on them: the timeline reads in order.
        self.history.observe(fleet.model.snapshot())
        backoff_ends = fleet.repairer.step() if self.systemd.connected else None
        snap = fleet.model.snapshot()
        self._report(snap)
        self._tell_blocked(snap)
        self._alert(snap, fleet)
        self.keeper.save_soon()
        ends = [e for e in (backoff_ends, timed) if e is not None]
        return min(ends) if ends else None

    def _alert(self, snap: Snapshot, fleet: Fleet) -> None:
        if not self.systemd.connected:
            return  # unknown is not failing: no alerts while we cannot see
        # Dependants first: a root's resolved notice then says who came back in the same pass.
        for t in sorted(snap.targets, key=lambda t: bool(t.dependants)):
            self.alerts.publish(self.policy.observe(t, fleet.repairer.gave_up(t.name)))
        self.alerts.publish(self.policy.flush())

    def _tell_blocked(self, snap: Snapshot) -> None:
        """A target blocked by a root cause, or freed when it is back: one event each."""
        for t in snap.targets:
            was = self._blocked.get(t.name)
            if t.blocked_by == was:
                continue
            if t.blocked_by is not None:
                self._blocked[t.name] = t.blocked_by
                self.emit(Blocked(t.name, t.blocked_by, t.blocked_by))
            elif was is not None:
                del self._blocked[t.name]
                self.emit(Blocked(t.name, None, was))

    def _report(self, snap: Snapshot) -> None:
        for t in snap.targets:
            if self._statuses.get(t.name) is not t.status:
                self._statuses[t.name] = t.status
                level = logging.INFO if t.status is Status.PASS else logging.WARNING
                what = t.unit or "host"
                if t.status is Status.UNKNOWN:  # the output already says "unknown: why"
                    log.log(level, "%s (%s): %s", t.name, what, t.output)
                else:
                    log.log(level, "%s (%s) is %s: %s", t.name, what, t.status.value, t.output)
        line = render.status_line(snap)
        if not self.breaker.open:
            line += "; breaker closed"
        self.show_status(line)
