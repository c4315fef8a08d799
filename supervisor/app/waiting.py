"""Waiting on the first of several events (stop, halt, reload)."""

from __future__ import annotations

import asyncio


async def first_of(*events: asyncio.Event) -> asyncio.Event:
    """Wait until one of the events is set; return it."""
    waiters = {asyncio.ensure_future(e.wait()): e for e in events}
    try:
        done, _pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return waiters[next(iter(done))]
