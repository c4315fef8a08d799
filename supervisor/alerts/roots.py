"""One root cause in the alert policy: a root's incident accounts for its dependants, and a
dependant freed by the root's return gets its restart before it is judged alone. Pure.

A root's incident lists every target that needs it (directly or through others) when it
opens; its resolved notice waits until each of them is back, or failing on its own (then an
incident of its own), at most `resolved_wait_s` after the root came back.
"""

from __future__ import annotations

from collections.abc import Mapping

from supervisor.alerts.incident import Incident
from supervisor.model import Status, TargetHealth
from supervisor.times import utc_stamp


def account(incidents: Mapping[str, Incident], t: TargetHealth, now: float, settled: bool) -> None:
    """A freed dependant came back, or fails on its own: every root waiting for it says so.

    Not only the root it was freed from: in a chain (the position monitor needs the dashboard,
    which needs the trader) it was last blocked by the dashboard, which opened no incident,
    while the trader's incident is the one waiting for it.
    """
    if t.freed_from is None:
        return
    if f"{t.name}:health" in incidents:
        how = "still failing"
    elif t.back and settled and t.status is not Status.UNKNOWN:
        how = f"back at {utc_stamp(now)}"
    else:
        return
    for root in incidents.values():
        if root.dependants.get(t.name, "x") == "":  # waited for, not yet accounted for
            root.dependants[t.name] = how


def freed_wait(t: TargetHealth, now: float, wait_s: float) -> bool:
    """Freed by its root's return, still in the failure that began before: its restart and
    start-up grace come first (a status change ends the wait; `wait_s` at most)."""
    return t.freed_at is not None and t.since <= t.freed_at and now - t.freed_at < wait_s
