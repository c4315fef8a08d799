"""One root cause: which target is down because a target it needs is down. Pure.

While a dependency (directly or through others) is down, its dependants are `blocked by` the
root: the deepest dependency that is down while everything it needs is up. Their own status
stays as it is; recovery and alerts leave them to the root. Once the root is back, each of
them is `freed` (with the time), so recovery restarts the ones still failing, in dependency
order (one still blocked by a nearer dependency waits for it), and the alert policy counts a
freed dependant's failures from then on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from supervisor import graph
from supervisor.config import DependenciesConfig
from supervisor.graph import Graph
from supervisor.model import ActiveState, Clock, Status, TargetHealth, UnitState
from supervisor.watch import intent

__all__ = ["Graph", "Relations", "blockers", "down", "systemd_graphs", "went_down_with"]


def down(t: TargetHealth) -> bool:
    """Cannot serve what needs it: failing, stopped, starting or not active.

    Unknown (we cannot see systemd) blocks nobody: that would be a guess.
    """
    return t.status is not Status.UNKNOWN and not t.back


def blockers(targets: Mapping[str, TargetHealth], needs: Graph) -> dict[str, str]:
    """Each target with a dependency down, and its root cause."""
    out: dict[str, str] = {}
    for name in targets:
        downs = [n for n in graph.needs(needs, name) if n in targets and down(targets[n])]
        if not downs:
            continue
        roots = [d for d in downs if not any(n in downs for n in graph.needs(needs, d))]
        out[name] = (roots or downs)[-1]
    return out


def went_down_with(
    unit: UnitState, bound_to: Iterable[UnitState | None], now: float, window_s: float
) -> bool:
    """A stop of `unit` came from systemd because a unit it is bound to went down too.

    True when one of them is not active, or changed state within `window_s` (it died and may
    be up again already by the time the dependant's stop is seen).
    """
    for other in bound_to:
        if other is None:
            continue
        if other.active_state is not ActiveState.ACTIVE:
            return True
        if other.state_change_usec and now - other.state_change_usec / 1e6 < window_s:
            return True
    return False


def systemd_graphs(
    units: Iterable[UnitState], names: Mapping[str, str]
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(needs, bound) between watched units as systemd says, as graphs of target names."""
    relations = {
        u.unit: {
            "Requires": u.requires,
            "BindsTo": u.binds_to,
            "PartOf": u.part_of,
            "After": u.after,
        }
        for u in units
    }
    return graph.from_units(relations, names)


class Relations:
    """The dependency graph of the fleet and who is blocked or was freed; fed snapshots."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # How soon after a bound unit's change a stop went down with it (declare() sets it).
        self.window_s = DependenciesConfig().bound_stop_window_s
        self.needs: dict[str, tuple[str, ...]] = {}  # target -> targets it needs
        self.bound: dict[str, tuple[str, ...]] = {}  # the needs systemd stops it with
        self._declared: dict[str, tuple[str, ...]] = {}  # depends_on in the config
        self._systemd: dict[str, tuple[str, ...]] = {}  # read from the units
        self._blocked: dict[str, str] = {}
        self._freed: dict[str, tuple[str, float]] = {}  # target -> (root, wall time freed)
        # Each target's dependants for the fleet last seen: they change only with the graph
        # (100 targets cost 10,000 graph walks per snapshot when recomputed each time).
        self._dependants: tuple[tuple[str, ...], dict[str, tuple[str, ...]]] | None = None

    def declare(self, needs: Graph, settings: DependenciesConfig | None = None) -> None:
        """The config's `depends_on` and `[dependencies]` (a reload keeps what systemd said)."""
        self.window_s = (settings or DependenciesConfig()).bound_stop_window_s
        self._declared = graph.merge(needs)
        self.needs = graph.merge(self._declared, self._systemd)
        self._dependants = None

    def learn(self, needs: Graph, bound: Graph) -> None:
        """What systemd says of the watched units (read at every connect)."""
        self._systemd = graph.merge(needs)
        self.bound = graph.merge(bound)
        self.needs = graph.merge(self._declared, self._systemd)
        self._dependants = None

    def carry_over(self, previous: Relations) -> None:
        """After a reload: systemd's relations, and who is blocked and freed, stay."""
        self._blocked, self._freed = previous._blocked, previous._freed
        self.learn(previous._systemd, previous.bound)

    def read(
        self, previous: UnitState | None, unit: UnitState, states: Mapping[str, UnitState | None]
    ) -> None:
        """Learn systemd's relations again when a unit's changed (a first read, a reload).

        `states` maps every target to its unit's state (None: a host target, or not read yet).
        """
        keys = ("requires", "binds_to", "part_of", "after")
        if previous is not None and all(getattr(previous, k) == getattr(unit, k) for k in keys):
            return
        units = {name: u for name, u in states.items() if u is not None}
        self.learn(*systemd_graphs(units.values(), {u.unit: n for n, u in units.items()}))

    def through_bound(
        self,
        name: str,
        unit: UnitState,
        bound_stop: bool,
        states: Mapping[str, UnitState | None],
        now: float,
    ) -> tuple[UnitState, bool]:
        """`unit` as the health model should take it, and whether systemd stopped it with a
        unit it is bound to (BindsTo=, Requires=, PartOf=): then its stop is not a person's
        but its root's failure, and it is started again once the root is back. The mark
        stays until the unit starts again."""
        if intent.started(unit):
            bound_stop = False
        elif unit.operator_job is not None and not bound_stop:
            bound_to = [states.get(n) for n in self.bound.get(name, ())]
            bound_stop = went_down_with(unit, bound_to, now, self.window_s)
        if bound_stop and unit.operator_job is not None:
            return replace(unit, operator_job=None), True
        return unit, bound_stop

    def stopping_with(self, root: TargetHealth, views: Iterable[TargetHealth]) -> str | None:
        """A target bound to `root` (BindsTo=, Requires=, PartOf=, directly or through others)
        that systemd is still stopping with it, within `window_s` of the root's failure.

        Restarting the root then would make systemd restart that one too (a restart reaches
        the units bound to it and merges with their stop jobs): at once, before the root is
        up and without its start-up grace, which is the order recovery keeps.
        """
        if self._clock.time() - root.since >= self.window_s:
            return None  # a stop that takes this long is not to be waited for
        for t in views:
            unit = t.unit_state
            if unit is None or root.name not in graph.needs(self.bound, t.name):
                continue
            if unit.active_state is ActiveState.DEACTIVATING or (unit.job_id and t.blocked_by):
                return t.name
        return None

    def order(self, names: Iterable[str]) -> list[str]:
        """`names` with every dependency before what needs it."""
        return graph.order(self.needs, names)

    def apply(self, views: Iterable[TargetHealth]) -> tuple[TargetHealth, ...]:
        """The views with `blocked_by`, `freed_from`/`freed_at` and `dependants` filled in.

        A freed target stays marked freed (so every reader sees it come back, however late it
        looks) until it is blocked again.
        """
        views = tuple(views)
        by_name = {t.name: t for t in views}
        blocked = blockers(by_name, self.needs)
        now = self._clock.time()
        for name, root in self._blocked.items():
            if name not in blocked and name in by_name:
                self._freed[name] = (root, now)
        for name in blocked:
            self._freed.pop(name, None)
        self._blocked = blocked
        dependants = self._dependants_among(tuple(by_name))
        out = []
        for t in views:
            freed = self._freed.get(t.name)
            out.append(
                replace(
                    t,
                    blocked_by=blocked.get(t.name),
                    freed_from=freed[0] if freed else None,
                    freed_at=freed[1] if freed else None,
                    dependants=dependants[t.name],
                )
            )
        return tuple(out)

    def _dependants_among(self, names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """Each of `names` with its dependants among them, in dependency order; computed
        again only when the graph or the names changed."""
        if self._dependants is None or self._dependants[0] != names:
            found = {}
            for name in names:
                theirs = set(graph.dependants(self.needs, name))
                found[name] = tuple(self.order(n for n in names if n in theirs))
            self._dependants = (names, found)
        return self._dependants[1]
