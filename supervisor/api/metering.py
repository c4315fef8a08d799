"""Charging a connection's client for the CPU time its tasks take. Pure: the HTTP adapter
wraps aiohttp's coroutines (its request loop, each request) in `Metered`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from typing import Any, Protocol


class Meter(Protocol):
    """Runs one step and charges its CPU time to a client."""

    def metered(self, call: Callable[..., Any], *args: Any) -> Any: ...


class Metered(Coroutine[Any, Any, Any]):
    """A coroutine whose every step's CPU time is charged to its connection's client."""

    __slots__ = ("_conn", "_coro")

    def __init__(self, coro: Coroutine[Any, Any, Any], conn: Meter) -> None:
        self._coro = coro
        self._conn = conn

    def send(self, value: Any) -> Any:
        """One step."""
        return self._conn.metered(self._coro.send, value)

    def throw(self, *args: Any) -> Any:
        """One step, with an exception thrown in (cancellation)."""
        return self._conn.metered(self._coro.throw, *args)

    def close(self) -> None:
        """Close the wrapped coroutine."""
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self

    def __iter__(self) -> Metered:
        return self

    def __next__(self) -> Any:
        return self.send(None)
