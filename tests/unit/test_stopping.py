"""Shutdown ends within its deadline, names the part it had to cancel, and still saves."""

from __future__ import annotations

import asyncio

import pytest

from supervisor.app.stopping import stop_within

MARGIN_S = 30.0  # only so that a regression fails instead of hanging; no timing is asserted


async def test_a_part_that_never_stops_is_cancelled_at_the_deadline_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[str] = []
    never = asyncio.Event()

    async def closes() -> None:
        await asyncio.to_thread(done.append, "http")

    async def hangs() -> None:
        await never.wait()  # a part whose stop never returns

    async def late() -> None:
        await asyncio.to_thread(str)  # past the deadline: cancelled at its first pause
        done.append("late")

    steps = [
        ("state", lambda: done.append("state")),
        ("http", closes),
        ("recovery", hangs),
        ("history file", late),
        ("lock", lambda: done.append("lock")),
    ]
    async with asyncio.timeout(MARGIN_S):
        cancelled = await stop_within(steps, deadline_s=0.2)
    assert cancelled == ["recovery", "history file"]
    assert done == ["state", "http", "lock"]  # what saves and releases still ran
    assert "shutdown: recovery still stopping after 0.2 s: cancelled" in caplog.text
    assert "shutdown: history file still stopping after 0.2 s: cancelled" in caplog.text


async def test_within_the_deadline_nothing_is_cancelled_or_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[str] = []

    async def closes() -> None:
        await asyncio.to_thread(done.append, "http")

    steps = [("http", closes), ("lock", lambda: done.append("lock"))]
    assert await stop_within(steps, deadline_s=MARGIN_S) == []
    assert done == ["http", "lock"]
    assert "shutdown:" not in caplog.text


async def test_a_part_s_own_timeout_is_its_own_error() -> None:
    async def times_out() -> None:
        raise TimeoutError("its own")

    with pytest.raises(TimeoutError, match="its own"):
        await stop_within([("probe", times_out)], deadline_s=MARGIN_S)
