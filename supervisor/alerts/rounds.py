"""When a target's failure counts and when it is back for long enough: the alert policy's
measures of time. Pure."""

from __future__ import annotations

from supervisor.model import TargetHealth

# A unit with no probe has only systemd's word that it is up, and a start that fails shows
# `active (running)` for a moment (DESIGN.md: active is not healthy): it is back only once it
# has stayed active this long.
SETTLE_S = 2.0
DEFAULT_ROUND_S = 5.0  # a target whose probe period is not known: the default period


def settled(t: TargetHealth, now: float) -> bool:
    """Probes judge a target with probes; a unit with none must have stayed up a while."""
    unit = t.unit_state
    if t.probes or unit is None or not unit.state_change_usec:
        return True
    return now - unit.state_change_usec / 1e6 >= SETTLE_S


def failed_rounds(t: TargetHealth, now: float, round_s: float = DEFAULT_ROUND_S) -> int:
    """Failed rounds: each run of a failing probe is one, and so is each round of time.

    systemd's updates are not rounds: one crash sends several (failed, its result, its exit
    status), which made one crash "3 failed rounds" and an incident at once. And a unit that
    stays dead sends no more: time counts rounds too. A dependant freed by its root's return
    counts only its failures since then.
    """
    since = t.since
    probed = max((p.consecutive_failures for p in t.probes), default=0)
    if t.freed_at is not None and t.freed_at > since:
        since, probed = t.freed_at, 0
    by_time = 1 + int((now - since) / round_s)
    return max(probed, by_time)
