"""What survives a restart: incidents, silences, outbox, recovery attempts, Telegram offset.

The composition layer's bridge between the parts that hold this state and the state file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from supervisor.alerts.delivery import AlertService
from supervisor.alerts.outbox import Outbox
from supervisor.alerts.policy import AlertPolicy
from supervisor.recovery.executor import Repairer
from supervisor.runtime.state import StateStore

log = logging.getLogger(__name__)


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
    ) -> None:
        self._store = store
        self._policy = policy
        self._outbox = outbox
        self._alerts = alerts
        self._repairer = repairer
        self._saved: dict[str, Any] = {}
        self._dirty = True

    def restore(self) -> bool:
        """Resume from the state file; True (and an alert) if the last run did not stop cleanly."""
        saved = self._store.load()
        self._policy.restore(saved.get("alerts", {}))
        self._outbox.restore(saved.get("outbox", {}))
        self._repairer().restore(saved.get("recovery", {}))
        offset = saved.get("telegram_offset")
        self._alerts.offset = offset if isinstance(offset, int) else None
        if saved.get("running"):
            how = "the previous run ended without a clean stop (crash, watchdog or kill)"
            log.warning("supervisor restarted: %s", how)
            self._alerts.publish(self._policy.supervisor_restarted(how))
            return True
        return False

    def changed(self) -> None:
        """Something worth saving changed."""
        self._dirty = True

    def save(self, running: bool = True) -> None:
        """Write the state file if anything in it changed (atomic; failures only logged)."""
        state = {
            "running": running,
            "alerts": self._policy.export(),
            "outbox": self._outbox.export(),
            "recovery": self._repairer().export(),
            "telegram_offset": self._alerts.offset,
        }
        if not self._dirty and state == self._saved:
            return
        if self._store.save(state):
            self._saved, self._dirty = state, False
