"""Holds: a person's "I am working on it", set from the CLI, HTTP or the chat.

The composition layer's one place for holds: it checks the request, puts the hold on the
current fleet's model, emits set / released / expired as typed events (history and the
journal subscribe), and when a hold
ends gives the target fresh counts (recovery attempts and alert incidents start over).
The decisions (what a held target means) are in the pure parts: the health model keeps the
hold, the recovery policy and the alert policy leave a held target alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor.alerts.policy import AlertPolicy
from supervisor.api.render import hold_document
from supervisor.app.fleet import Fleet
from supervisor.happenings import Emit, HoldEnded, HoldSet
from supervisor.model import Clock, Hold
from supervisor.times import DEFAULT_HOLD_S, MAX_HOLD_S, local_clock

REASON_MAX = 200  # characters of a reason kept (it is shown in /health, the page and alerts)


class HoldError(ValueError):
    """A hold request that cannot be done; the message says why (a 4xx, a CLI error)."""


class HoldDesk:
    """Set, release, list and expire holds on the current fleet."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        policy: AlertPolicy,
        clock: Clock,
        emit: Emit,
        wake: Callable[[], None],
    ) -> None:
        self._fleet = fleet
        self._policy = policy
        self._clock = clock
        self._emit = emit
        self._wake = wake

    def use(self, fleet: Fleet) -> None:
        """Hold and release on `fleet` from now on (a reload's new one)."""
        self._fleet = fleet

    def hold(self, name: str, for_s: float | None, reason: str, by: str) -> Hold:
        """Hold `name` for `for_s` (default 30 min, at most 24 h); HoldError if it cannot."""
        model = self._fleet.model
        if name not in model.names:
            raise HoldError(f"no target named {name!r} ({', '.join(model.names)})")
        seconds = DEFAULT_HOLD_S if for_s is None else for_s
        if not 0 < seconds <= MAX_HOLD_S:
            raise HoldError("a hold lasts more than 0 s and at most 24h")
        now = self._clock.time()
        reason = " ".join(reason.split())[:REASON_MAX]
        hold = Hold(until=now + seconds, reason=reason, by=by[:REASON_MAX], since=now)
        model.set_hold(name, hold)
        words = f"{name} held until {local_clock(hold.until)} by {hold.by}" + (
            f": {reason}" if reason else ""
        )
        self._emit(HoldSet(name, hold.until, hold.by, reason, words))
        self._wake()
        return hold

    def release(self, name: str, by: str, *, expired: bool = False) -> Hold | None:
        """End the hold on `name` (None if there was none); fresh counts from now."""
        fleet = self._fleet
        if name not in fleet.model.names:
            raise HoldError(f"no target named {name!r} ({', '.join(fleet.model.names)})")
        hold = fleet.model.release(name)
        if hold is None:
            return None
        fleet.repairer.fresh(name)
        self._policy.forget(name)
        self._emit(HoldEnded(name, by, expired))
        self._wake()
        return hold

    def release_all(self, by: str) -> list[str]:
        """End every hold; returns the targets released."""
        return [n for n in list(self.holds()) if self.release(n, by) is not None]

    def holds(self) -> dict[str, Hold]:
        """Every hold in force."""
        return self._fleet.model.holds()

    def expire(self) -> None:
        """End the holds whose time is up (each supervision pass)."""
        for name, _hold in self._fleet.model.expired_holds():
            self.release(name, "time", expired=True)

    def handle(self, request: dict[str, Any], by: str) -> dict[str, Any]:
        """One control request (the CLI's socket): hold, release, release-all, holds."""
        op = request.get("op")
        try:
            if op == "hold":
                for_s = request.get("for_s")
                hold = self.hold(
                    str(request.get("target", "")),
                    None if for_s is None else float(for_s),
                    str(request.get("reason", "")),
                    by,
                )
                return {"ok": True, "hold": hold_document(hold)}
            if op == "release":
                name = str(request.get("target", ""))
                released = self.release(name, by)
                return {"ok": True, "released": [name] if released else []}
            if op == "release-all":
                return {"ok": True, "released": self.release_all(by)}
            if op == "holds":
                return {"ok": True, "holds": {n: hold_document(h) for n, h in self.holds().items()}}
        except (HoldError, TypeError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": False, "error": f"unknown request {op!r}"}
