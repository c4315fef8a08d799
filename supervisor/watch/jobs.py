"""Whose job is it: our own restarts, systemd's, or someone else's (an operator's).

Pure bookkeeping fed by the D-Bus adapter (`watch.systemd`): JobNew, JobRemoved, our own
calls and their replies. Ours are known by their job path (RestartUnit's reply) and, while
our call is in flight, by their unit: systemd may send JobNew before our reply arrives.

Races, honestly: an operator's job on the same unit within the few milliseconds our own call
is in flight counts as ours (it is then a restart we asked for anyway). systemd's own
`Restart=` queues its restart job while the unit is in `auto-restart`: that one is systemd's,
not a person's. JobType is read at JobNew; a job that ends before the answer comes stays
"unknown", and the health model then takes only a clean stop (inactive, Result=success) as a
stop on request.
"""

from __future__ import annotations

from supervisor.model import UnitState

UNKNOWN = "unknown"
_KEEP = 256  # paths of our jobs remembered at most (a JobRemoved can be missed on a lost bus)


class JobBook:
    """Jobs on watched units: ours, and the foreign ones with their type."""

    def __init__(self) -> None:
        self._ours: dict[str, None] = {}  # insertion-ordered set of our job paths
        self._acting: dict[str, int] = {}  # unit -> our calls in flight
        self._foreign: dict[str, tuple[str, str]] = {}  # job path -> (unit, JobType)

    def calling(self, unit: str) -> None:
        """We are about to ask systemd for a job on `unit`."""
        self._acting[unit] = self._acting.get(unit, 0) + 1

    def called(self, unit: str, path: str | None) -> bool:
        """Our call returned (`path` None: it failed); True if that job had looked foreign."""
        self._acting[unit] = max(0, self._acting.get(unit, 0) - 1)
        if path is None:
            return False
        self._remember(path)
        return self._foreign.pop(path, None) is not None

    def new(self, path: str, state: UnitState) -> bool:
        """JobNew on a watched unit; True if it is someone else's (recorded as such)."""
        if path in self._ours:
            return False
        if self._acting.get(state.unit):
            self._remember(path)
            return False
        if state.sub_state == "auto-restart":
            return False  # systemd's own Restart= at work
        self._foreign[path] = (state.unit, UNKNOWN)
        return True

    def typed(self, path: str, job_type: str) -> str | None:
        """The JobType of a foreign job was read; returns its unit if it is still pending."""
        entry = self._foreign.get(path)
        if entry is None:
            return None
        self._foreign[path] = (entry[0], job_type)
        return entry[0]

    def removed(self, path: str) -> tuple[str, str] | None:
        """JobRemoved; returns (unit, JobType) if it was someone else's job."""
        self._ours.pop(path, None)
        return self._foreign.pop(path, None)

    def pending(self, unit: str) -> str | None:
        """The type of the latest foreign job still on `unit`, if any."""
        types = [t for u, t in self._foreign.values() if u == unit]
        return types[-1] if types else None

    def clear(self) -> None:
        """The bus is gone: every job is forgotten (a reconnect re-reads all)."""
        self._ours.clear()
        self._acting.clear()
        self._foreign.clear()

    def _remember(self, path: str) -> None:
        self._ours[path] = None
        while len(self._ours) > _KEEP:
            self._ours.pop(next(iter(self._ours)))
