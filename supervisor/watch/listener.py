"""What systemd's news does at once: the health model first, then everyone who is told.

The D-Bus front end (`systemd.py`) and the bus link call this `Listener` from the bus reader.
A unit's new state reaches the health model at once (event-driven, not at the next pass);
then it travels as a typed event (history subscribes), the autopsy hears of a death as it
happens, and a supervision pass runs soon.
"""

from __future__ import annotations

from collections.abc import Callable

from supervisor.happenings import BusLost, Emit, UnitChanged
from supervisor.model import UnitState
from supervisor.watch.autopsy import Autopsies
from supervisor.watch.health import HealthModel


class UnitListener:
    """systemd's `Listener` for the fleet in force (a reload hands it the new `model`)."""

    def __init__(
        self,
        model: HealthModel,
        autopsies: Autopsies,
        emit: Emit,
        wake: Callable[[], None],
    ) -> None:
        self._model = model
        self._autopsies = autopsies
        self._emit = emit
        self._wake = wake

    def use(self, model: HealthModel) -> None:
        """Apply news to `model` from now on (a reload's new fleet)."""
        self._model = model

    def unit_changed(self, state: UnitState) -> None:
        """Apply a watched unit's new state and wake the supervision loop."""
        model = self._model
        name = model.name_for_unit(state.unit)
        if name is not None:
            model.apply_unit(name, state)
            self._emit(UnitChanged(name, state))
            self._autopsies.unit_changed(name, state)
            self._wake()

    def bus_lost(self, reason: str) -> None:
        """Everything is unknown until we are back on the bus."""
        model = self._model
        model.set_unknown(reason)
        model.set_note("bus", f"D-Bus: {reason}; reconnecting")
        self._emit(BusLost(reason))
        self._wake()
