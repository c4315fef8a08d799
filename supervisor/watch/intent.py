"""What the people who run the box asked for: deliberate stops, holds, start-up grace, flapping.

Pure: judged from unit states and times passed in. The D-Bus adapter marks a unit's state
with `operator_job` while a job that someone else asked systemd for (`systemctl stop`,
`restart`, `start`) is on it; the health model asks here what that means.

systemd's own `Restart=` never restarts a unit that was stopped on request; neither do we.
A death nobody asked for (a signal, a failing exit status, a clean exit of a unit that
should be running) has no such job on it, and stays a failure exactly as before.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from supervisor.model import ActiveState, Flapping, Status, UnitState

_RUNNING = (ActiveState.ACTIVE, ActiveState.RELOADING, ActiveState.REFRESHING)
_VERB = {"stop": "stopping", "restart": "restarting", "start": "starting", "reload": "reloading"}


def stopped_on_request(unit: UnitState) -> bool:
    """The unit is down because someone asked systemd to stop it.

    A stop job of someone else's on a unit that is now inactive (or failed while stopping)
    is a stop on request. When the job ended before its type could be read ("unknown"),
    only a clean end counts (inactive, Result=success): a failing result is a failure.
    """
    job = unit.operator_job
    if job is None or unit.active_state not in (ActiveState.INACTIVE, ActiveState.FAILED):
        return False
    if job == "stop":
        return True
    return (
        job == "unknown" and unit.active_state is ActiveState.INACTIVE and unit.result == "success"
    )


def started(unit: UnitState) -> bool:
    """Any start (ours, systemd's, the operator's) ends a stop on request."""
    return (
        unit.active_state in (*_RUNNING, ActiveState.ACTIVATING)
        and unit.sub_state != "auto-restart"
    )


def on_request(unit: UnitState) -> tuple[Status, str] | None:
    """How a unit with someone else's job under way is judged; None: as usual.

    An operator's restart passes through deactivating, inactive and activating: that is not
    a failure. A start or restart that fails (failed, a failing result) is one.
    """
    job = unit.operator_job
    if job is None or unit.active_state in _RUNNING:
        return None
    if unit.active_state is ActiveState.FAILED or unit.result != "success":
        return None
    words = (
        f"{unit.active_state.value} ({unit.sub_state})"
        if unit.sub_state
        else unit.active_state.value
    )
    if job not in _VERB:  # its type not read yet (or the job ended first): say what it does
        job = "start" if unit.active_state is ActiveState.ACTIVATING else "stop"
    return Status.WARN, f"{words}: {_VERB[job]} on request"


@dataclass(frozen=True, slots=True)
class FlapRule:
    """`count` failures within `window_s` make a target flapping; `quiet_s` passing ends it."""

    count: int = 3
    window_s: float = 900.0
    quiet_s: float = 300.0


class FlapTrack:
    """One target's recent failures (wall times) and whether it is flapping."""

    def __init__(self, rule: FlapRule) -> None:
        self.rule = rule
        self._onsets: deque[float] = deque()
        self.flapping: Flapping | None = None
        self._recovered = True  # passed since the last failure counted

    def passed(self) -> None:
        """The target passes: its next failure counts (it failed *and recovered*)."""
        self._recovered = True

    def failed(self, now: float) -> None:
        """The target turned `fail` now; counted only if it recovered since the last one."""
        if not self._recovered:
            return  # the same outage, still not back: down, not flapping
        self._recovered = False
        self._onsets.append(now)
        while self._onsets and self._onsets[0] < now - self.rule.window_s:
            self._onsets.popleft()
        count = len(self._onsets)
        if count >= self.rule.count:
            first = self._onsets[0] if self.flapping is None else self.flapping.since
            self.flapping = Flapping(count, now - self._onsets[0], first)

    def settle(self, passing: bool, now: float) -> bool:
        """End flapping after `quiet_s` passing with no failure; True if it ended now."""
        if self.flapping is None or not passing:
            return False
        if self._onsets and now - self._onsets[-1] < self.rule.quiet_s:
            return False
        self.flapping = None
        self._onsets.clear()
        return True

    def quiet_at(self) -> float | None:
        """The wall time flapping may end (if the target passes then)."""
        if self.flapping is None or not self._onsets:
            return None
        return self._onsets[-1] + self.rule.quiet_s

    def export(self) -> dict[str, Any] | None:
        """For the state file while it flaps: a restart must not end flapping (its incident is
        saved too, and would be told "stable again" at once by a life that forgot)."""
        if self.flapping is None:
            return None
        return {"onsets": list(self._onsets), "flapping": asdict(self.flapping)}

    def restore(self, data: Any) -> None:
        """Take back what `export()` gave; anything malformed is ignored."""
        try:
            onsets = [float(at) for at in data["onsets"]]
            flapping = Flapping(**data["flapping"])
        except (TypeError, KeyError, ValueError):
            return
        self._onsets = deque(onsets)
        self.flapping = flapping
