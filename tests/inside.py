"""What the tests read of a daemon running in their own loop, asked in one place.

Tests ask these questions instead of reaching into `daemon.parts.*`: when a part is renamed
or recomposed, this file changes, not every test. Read-only, except `listen`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from supervisor.alerts.incident import Incident
from supervisor.api.exposition import Metric
from supervisor.app.daemon import Daemon
from supervisor.history.events import Event
from supervisor.model import Clock, UnitState


class Inside:
    """One daemon's figures, connections and saved state, as tests need them."""

    def __init__(self, daemon: Daemon) -> None:
        self._parts = daemon.parts  # built once; a reload hands its parts a new `in_force`

    @property
    def port(self) -> int:
        """The HTTP port it bound (0 until it has)."""
        return self._parts.http.port

    @property
    def on_bus(self) -> bool:
        """Connected to systemd over the bus now."""
        return self._parts.systemd.connected

    @property
    def bus_owner(self) -> str:
        """The unique bus name of the systemd it follows (a re-exec changes it)."""
        return self._parts.systemd.owner

    def unit(self, unit: str) -> UnitState | None:
        """The state systemd last told of `unit`, if it watches it."""
        return self._parts.systemd.state(unit)

    @property
    def breaker_open(self) -> bool:
        """The circuit breaker in force is open."""
        return self._parts.breaker.open

    def sample(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """One sample of /metrics as the registry holds it (None: no such series)."""
        return self._parts.metrics.registry.get_sample_value(name, dict(labels or {}))

    def metrics(self) -> Iterable[Metric]:
        """Every metric family of /metrics."""
        return self._parts.metrics.registry.collect()

    @property
    def load_samples(self) -> int:
        """Load samples the sentry has taken so far."""
        return self._parts.sentry.samples

    @property
    def trims(self) -> int:
        """Times the sentry gave freed memory back under budget."""
        return self._parts.sentry.trims

    @property
    def passes(self) -> int:
        """Supervision passes completed so far."""
        return self._parts.supervision.passes

    @property
    def incidents(self) -> Mapping[str, Incident]:
        """The alert policy's open incidents by key (`trader:health`)."""
        return self._parts.policy.incidents

    @property
    def silences(self) -> Mapping[str, float]:
        """Targets silenced by chat command, and until when."""
        return self._parts.policy.silences

    @property
    def chat_offset(self) -> int | None:
        """The next Telegram update it will ask for (None: none read yet)."""
        return self._parts.alerts.offset

    @property
    def history_open(self) -> bool:
        """The history's file is open and written to."""
        return self._parts.history.ready

    def listen(self, hear: Callable[[Event], None]) -> Callable[[], None]:
        """Hear each history event as it is recorded; returns how to stop."""
        return self._parts.history.subscribe(hear)

    @property
    def clock(self) -> Clock:
        """The clock it runs on."""
        return self._parts.clock

    @property
    def state_file(self) -> Path:
        """Where it saves its state."""
        return self._parts.keeper.store.path

    @property
    def state_writes(self) -> int:
        """Times the state file was written so far."""
        return self._parts.keeper.store.writes

    def saved(self) -> dict[str, Any]:
        """The state file as it reads it back."""
        return dict(self._parts.keeper.store.load())
