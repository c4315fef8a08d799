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
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from supervisor.alerts.delivery import AlertService
from supervisor.alerts.outbox import Outbox
from supervisor.alerts.policy import AlertPolicy
from supervisor.recovery.executor import Repairer
from supervisor.runtime.state import StateStore
from supervisor.watch.health import HealthModel

log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Alerts(_Section):
    incidents: list[dict[str, Any]] = []
    silences: dict[str, float] = {}
    sent: list[float] = []
    held: list[dict[str, Any]] = []


class _Recovery(_Section):
    attempts: list[float] = []
    gave_up_until: float | None = None
    slow_retry: bool = False


class SavedState(_Section):
    """The state file's shape; anything else is moved aside."""

    version: int
    running: bool = False
    alerts: _Alerts = _Alerts()
    outbox: dict[str, Any] = {}
    recovery: dict[str, _Recovery] = {}
    telegram_offset: int | None = None
    targets: dict[str, Any] = {}  # holds and stops on request (the health model's export)


class StateKeeper:
    """Restores the parts at start-up and saves them when something in them changed."""

    def __init__(
        self,
        store: StateStore,
        *,
        policy: AlertPolicy,
        outbox: Outbox,
        alerts: AlertService,
        repairer: Callable[[], Repairer],  # the current fleet's (a reload replaces it)
        model: Callable[[], HealthModel],  # likewise
    ) -> None:
        self.store = store
        self._policy = policy
        self._outbox = outbox
        self._alerts = alerts
        self._repairer = repairer
        self._model = model
        self._saved: dict[str, Any] | None = None  # what the file holds (None: unknown)
        self._kick = asyncio.Event()
        # The writer's thread may still be writing when shutdown saves: the last word must be
        # shutdown's, or a clean stop would read as a crash at the next start.
        self._write_lock = threading.Lock()
        self._final = False

    def restore(self) -> bool:
        """Resume from the state file; True (and an alert) if the last run did not stop cleanly."""
        raw = self.store.load()
        if not raw:
            return False
        try:
            saved = SavedState.model_validate(raw)
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.errors()[0]["loc"])
            self.store.move_aside(f"wrong shape at {where}: {exc.errors()[0]['msg']}")
            return False
        self._policy.restore(saved.alerts.model_dump())
        self._outbox.restore(saved.outbox)
        self._repairer().restore({k: v.model_dump() for k, v in saved.recovery.items()})
        self._model().restore(saved.targets)
        self._alerts.offset = saved.telegram_offset
        if saved.running:
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
            "recovery": self._repairer().export(),
            "telegram_offset": self._alerts.offset,
            "targets": self._model().export(),
        }

    def save_soon(self) -> None:
        """Called after each pass: the writer saves if the state differs from the file."""
        self._kick.set()

    async def run(self) -> None:
        """The writer: one write at a time, in a thread, of the latest state."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            state = self.state()
            if state == self._saved:
                continue
            if await asyncio.to_thread(self._save, state):
                self._saved = state

    def _save(self, state: dict[str, Any]) -> bool:
        with self._write_lock:
            return not self._final and self.store.save(state)

    def save_now(self, running: bool, *, final: bool) -> None:
        """On the loop, once at start-up and once at shutdown (`final`: no write after it)."""
        state = self.state(running)
        with self._write_lock:
            self._final = final
            saved = self.store.save(state)
        if saved:
            self._saved = state
