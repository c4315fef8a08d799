"""Stopping in one place, within one deadline that names what it had to cancel.

As uvicorn's `timeout_graceful_shutdown`: each part is given the time left, and a part still
stopping at the deadline is cancelled and named in the log. The steps after it still run
(saving the state and releasing the lock must happen), but get no time beyond the deadline:
systemd kills us at `TimeoutStopSec` and loses whatever was not saved by then.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)
# Below the unit's TimeoutStopSec=10, so the saving and the log line come before systemd's kill.
SHUTDOWN_DEADLINE_S = 8.0

# A part's name and how it stops: a plain call, or one whose result is awaited if awaitable.
Step = tuple[str, Callable[[], object]]


async def stop_within(steps: Sequence[Step], deadline_s: float) -> list[str]:
    """Run `steps` in order, all within `deadline_s`; the names of those cancelled (logged)."""
    deadline = asyncio.get_running_loop().time() + deadline_s
    cancelled: list[str] = []
    for name, step in steps:
        pending = step()
        if not inspect.isawaitable(pending):
            continue
        try:
            async with asyncio.timeout_at(deadline) as limit:
                await pending
        except TimeoutError:
            if not limit.expired():
                raise  # the part's own timeout, not ours
            cancelled.append(name)
            log.warning("shutdown: %s still stopping after %.1f s: cancelled", name, deadline_s)
    return cancelled
