"""What survives a restart: incidents, silences, outbox, attempts, holds, Telegram offset.

The composition layer's bridge between the parts that hold this state and the state file.
Writes never happen on the event loop: the supervision pass only says what the state is
now; a writer task saves it in a thread, coalescing changes that come while one write is
under way, and writing nothing when nothing changed. A file of the wrong shape (valid JSON,
wrong types) is moved aside like a corrupt one, never a crash at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from supervisor.alerts.delivery import AlertService
from supervisor.alerts.outbox import Outbox
from supervisor.alerts.policy import AlertPolicy
from supervisor.app.fleet import Fleet
from supervisor.runtime.state import StateStore

log = logging.getLogger(__name__)


class WrongShapeError(ValueError):
    """The state file is JSON of this version, but a value has the wrong type."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")


# What each part of the file holds (a list or a table of what), checked without pydantic:
# it would cost the daemon about 16 MB of RSS for this one check at start-up.
_ALERTS: dict[str, tuple[type, type]] = {
    "incidents": (list, dict),
    "silences": (dict, float),
    "sent": (list, float),
    "held": (list, dict),
}
_RECOVERY: dict[str, Any] = {"attempts": [], "gave_up_until": None, "slow_retry": False}


def _expect(value: Any, kind: type, where: str, *, optional: bool = False) -> Any:
    """`value` if it is a `kind` (an int is a float, a bool is neither), else WrongShapeError."""
    if optional and value is None:
        return value
    numeric = kind in (int, float) and not isinstance(value, bool)
    if kind is float and numeric and isinstance(value, int | float):
        return value
    if isinstance(value, kind) and (numeric or kind not in (int, float)):
        return value
    raise WrongShapeError(where, f"should be {'null or ' if optional else ''}{kind.__name__}")


def _each(value: Any, outer: type, inner: type, where: str) -> Any:
    """A list (or a table) whose every item is an `inner`."""
    _expect(value, outer, where)
    for key, item in value.items() if isinstance(value, dict) else enumerate(value):
        _expect(item, inner, f"{where}.{key}")
    return value


def saved_state(raw: dict[str, Any]) -> dict[str, Any]:
    """The state file's parts with their defaults; WrongShapeError if a value has the wrong
    type. Unknown keys are kept (a newer version may have written them)."""
    _expect(raw.get("version"), int, "version")
    alerts = dict(_expect(raw.get("alerts", {}), dict, "alerts"))
    for key, (outer, inner) in _ALERTS.items():
        alerts[key] = _each(alerts.get(key, outer()), outer, inner, f"alerts.{key}")
    recovery = {}
    for name, given in _expect(raw.get("recovery", {}), dict, "recovery").items():
        one = {**_RECOVERY, **_expect(given, dict, f"recovery.{name}")}
        _each(one["attempts"], list, float, f"recovery.{name}.attempts")
        _expect(one["gave_up_until"], float, f"recovery.{name}.gave_up_until", optional=True)
        _expect(one["slow_retry"], bool, f"recovery.{name}.slow_retry")
        recovery[name] = one
    offset = _expect(raw.get("telegram_offset"), int, "telegram_offset", optional=True)
    return {
        "running": _expect(raw.get("running", False), bool, "running"),
        "alerts": alerts,
        "outbox": _expect(raw.get("outbox", {}), dict, "outbox"),
        "recovery": recovery,
        "telegram_offset": offset,
        "targets": _expect(raw.get("targets", {}), dict, "targets"),
    }


class StateKeeper:
    """Restores the parts at start-up and saves them when something in them changed."""

    def __init__(
        self,
        store: StateStore,
        *,
        policy: AlertPolicy,
        outbox: Outbox,
        alerts: AlertService,
        fleet: Fleet,  # a reload hands the new one (`use`)
    ) -> None:
        self.store = store
        self._policy = policy
        self._outbox = outbox
        self._alerts = alerts
        self._fleet = fleet
        self._saved: dict[str, Any] | None = None  # what the file holds (None: unknown)
        self._kick = asyncio.Event()
        # The writer's thread may still be writing when shutdown saves: the last word must be
        # shutdown's, or a clean stop would read as a crash at the next start.
        self._write_lock = threading.Lock()
        self._final = False
        # Each state taken on the loop gets the next number; the writer writes a state only if
        # no newer one is on disk (a pass's write and a send's flush can cross in the thread).
        self._taken = 0
        self._written = 0

    def use(self, fleet: Fleet) -> None:
        """Save and restore `fleet`'s recovery and targets from now on (a reload's new one)."""
        self._fleet = fleet

    def restore(self) -> bool:
        """Resume from the state file; True (and an alert) if the last run did not stop cleanly."""
        raw = self.store.load()
        if not raw:
            return False
        try:
            saved = saved_state(raw)
        except WrongShapeError as exc:
            self.store.move_aside(f"wrong shape at {exc}")
            return False
        self._policy.restore(saved["alerts"])
        self._outbox.restore(saved["outbox"])
        self._fleet.repairer.restore(saved["recovery"])
        self._fleet.model.restore(saved["targets"])
        self._alerts.offset = saved["telegram_offset"]
        if saved["running"]:
            how = "the previous run ended without a clean stop (crash, watchdog or kill)"
            log.warning("supervisor restarted: %s", how)
            self._alerts.publish(self._policy.supervisor_restarted(how))
            return True
        return False

    def state(self, running: bool = True) -> dict[str, Any]:
        """Everything worth keeping, as it stands now."""
        return {
            "running": running,
            "alerts": self._policy.export(),
            "outbox": self._outbox.export(),
            "recovery": self._fleet.repairer.export(),
            "telegram_offset": self._alerts.offset,
            "targets": self._fleet.model.export(),
        }

    def save_soon(self) -> None:
        """Called after each pass: the writer saves if the state differs from the file."""
        self._kick.set()

    async def run(self) -> None:
        """The writer: one write at a time, in a thread, of the latest state."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write the state as it is now, if the file holds anything else, and return once it
        is on disk (or the write failed: the store logged why). Alert delivery awaits this
        before a message leaves and after it left, so that a supervisor killed in between
        neither decides the alert again nor forgets that it went out."""
        number, state = self._take()
        if state != self._saved:
            await asyncio.to_thread(self._save, number, state)

    def _take(self, running: bool = True) -> tuple[int, dict[str, Any]]:
        self._taken += 1
        return self._taken, self.state(running)

    def _save(self, number: int, state: dict[str, Any]) -> None:
        with self._write_lock:
            if self._final or number <= self._written:  # a newer state is on disk already
                return
            if self.store.save(state):
                self._written, self._saved = number, state

    def save_now(self, running: bool, *, final: bool) -> None:
        """On the loop, once at start-up and once at shutdown (`final`: no write after it)."""
        number, state = self._take(running)
        with self._write_lock:
            self._final = final
            if self.store.save(state):
                self._written, self._saved = number, state
