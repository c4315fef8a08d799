"""The tests' one way to wait for a condition: poll it against a deadline, never sleep blind.

Wait on an event where the code under test offers one. Poll only where it cannot: a writer
thread, another process, a browser, a scraper. A deadline that passes fails the test and says
what it waited for, so a slow, loaded box makes a test slower, not wrong.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _expired(limit: float, what: str, last: object) -> AssertionError:
    return AssertionError(f"timed out after {limit:.1f} s waiting for {what}; last: {last!r}")


async def until(
    fetch: Callable[[], T],
    limit: float,
    what: str,
    *,
    ok: Callable[[T], object] = bool,
    step: float = 0.002,
    in_thread: bool = False,
) -> T:
    """Call `fetch` until `ok(value)` holds (by default: until it is truthy); return the value.

    `in_thread` runs `fetch` off the loop, for a blocking call while the daemon under test
    runs in this same loop (a browser, a scraper).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        value = await asyncio.to_thread(fetch) if in_thread else fetch()
        if ok(value):
            return value
        if loop.time() > deadline:
            raise _expired(limit, what, value)
        await asyncio.sleep(step)


async def until_awaited(
    fetch: Callable[[], Awaitable[T]],
    limit: float,
    what: str,
    *,
    ok: Callable[[T], object] = bool,
    step: float = 0.05,
) -> T:
    """`until` for a fetch that is itself awaited (an HTTP request, a subprocess)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        value = await fetch()
        if ok(value):
            return value
        if loop.time() > deadline:
            raise _expired(limit, what, value)
        await asyncio.sleep(step)


def until_blocking(
    fetch: Callable[[], T],
    limit: float,
    what: str,
    *,
    ok: Callable[[T], object] = bool,
    step: float = 0.005,
) -> T:
    """`until` for a test with no event loop (a store's writer thread, a child process)."""
    deadline = time.monotonic() + limit
    while True:
        value = fetch()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise _expired(limit, what, value)
        time.sleep(step)
