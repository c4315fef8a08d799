"""GET /events, /history and /history/{target}: the history, read-only, as JSON.

The store is read in a worker thread, so a slow disk never holds up the event loop that
supervises; what a read costs in CPU time is charged to the client that asked
(`guard.throttle.METER`). Chat events are shown without who sent them or from which chat
(`render.public_event`): any local user can read this API, and a Telegram user id is
nobody else's business (the log, which only the operator reads, keeps them).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from supervisor.api.render import public_event
from supervisor.guard.throttle import METER
from supervisor.history.events import EventQuery, HistorySource, Kind, parse_time

MAX_LIMIT = 1000
LAST_TIME = 253402300799.0  # 9999-12-31T23:59:59Z: later "times" are mistakes, not queries
MAX_ID = 2**63 - 1  # SQLite's integers are 64-bit
_PARAMS = ("target", "kind", "since", "until", "limit")  # what a page depends on (+ before)
_CACHED_PAGES = 32
DEFAULT_LIMIT = 100


def _json(doc: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(doc).encode(),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _raw(body: bytes) -> web.Response:
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _absolute(value: str) -> bool:
    """True for a time that means the same instant whenever it is asked (not `2h`)."""
    return not value or not value[-1:].isalpha() or value.endswith("Z")


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(reason=message)


def _time(params: Any, key: str, now: float) -> float | None:
    raw = params.get(key)
    if not raw:
        return None
    try:
        value = parse_time(raw, now)
    except (ValueError, OverflowError) as exc:
        raise _bad(f"{key}: {exc}") from None
    if not math.isfinite(value) or not 0 <= value <= LAST_TIME:
        raise _bad(f"{key}: {raw[:40]!r} is not a time between 1970 and 9999")
    return value


def _whole(params: Any, key: str, default: int | None, low: int, high: int) -> int | None:
    raw = params.get(key)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"{key} must be a whole number, not {raw[:40]!r}") from None
    if not low <= value <= high:
        raise _bad(f"{key} must be {low}..{high}")
    return value


def parse_query(params: Any, now: float) -> EventQuery:
    """The query string of /events as an EventQuery; HTTPBadRequest naming what is wrong."""
    kind = params.get("kind") or None
    if kind is not None and kind not in Kind._value2member_map_:
        raise _bad(f"kind must be one of {', '.join(k.value for k in Kind)}")
    limit = _whole(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    assert limit is not None
    return EventQuery(
        target=params.get("target") or None,
        kind=kind,
        since=_time(params, "since", now),
        until=_time(params, "until", now),
        before=_whole(params, "before", None, 0, MAX_ID),
        limit=limit,
    )


def _cache_key(query: EventQuery, params: Any) -> tuple[object, ...]:
    """What a page depends on: the same for `?limit=1000&n=1` and `?n=2&limit=1000`, so
    junk parameters never make a page uncached. A relative time (`2h`) is keyed by its
    text: its page is kept for the second it was made in."""
    since = params.get("since") if not _absolute(params.get("since", "")) else query.since
    until = params.get("until") if not _absolute(params.get("until", "")) else query.until
    return (query.target, query.kind, since, until, query.before, query.limit)


class HistoryRoutes:
    """The routes over a history source and the supervisor's own figures.

    Reads run on one thread of their own: one read connection, one malloc arena, and a
    slow disk holds up only other history reads. A page of /events is cached until the
    history changes (a new event, or the store catching up), as /health is per snapshot.
    """

    def __init__(self, source: HistorySource, about: Callable[[], dict[str, Any]]) -> None:
        self._source = source
        self._about = about
        self._reads = ThreadPoolExecutor(1, thread_name_prefix="history-read")
        self._cache: dict[tuple[object, ...], tuple[object, bytes]] = {}

    async def _read(self, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)` on the read thread, its CPU time charged to the request's client."""
        meter = METER.get()
        spent = [0.0]

        def timed() -> Any:
            started = time.thread_time()
            try:
                return call(*args)
            finally:
                spent[0] = time.thread_time() - started

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reads, timed)
        finally:
            if meter is not None:
                meter.worker_s += spent[0]

    def add_to(self, app: web.Application) -> None:
        """Register the routes."""
        app.router.add_get("/events", self.events)
        app.router.add_get("/history", self.summary)
        app.router.add_get("/history/{target}", self.target)
        app.on_cleanup.append(self._close)

    async def _close(self, app: web.Application) -> None:
        self._reads.shutdown(wait=False, cancel_futures=True)

    async def events(self, request: web.Request) -> web.Response:
        """A page of the timeline, newest first; `next` links the following page."""
        query = parse_query(request.query, time.time())
        key = _cache_key(query, request.query)
        # `since=2h` moves with the clock: such a page is kept for the second it was made in.
        relative = any(not _absolute(request.query.get(k, "")) for k in ("since", "until"))
        version = (self._source.version, int(time.time()) if relative else 0)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == version:
            return _raw(cached[1])
        body = json.dumps(await self._page(request, query)).encode()
        if len(self._cache) >= _CACHED_PAGES:
            self._cache.clear()
        self._cache[key] = (version, body)
        return _raw(body)

    async def _page(self, request: web.Request, query: EventQuery) -> dict[str, Any]:
        found, stored = await self._read(self._source.events, query)
        doc: dict[str, Any] = {
            "events": [public_event(e.document()) for e in found],
            "source": "store" if stored else "memory",
            "next": None,
        }
        if len(found) == query.limit:
            params = {k: request.query[k] for k in _PARAMS if request.query.get(k)}
            params["before"] = str(found[-1].id)
            doc["next"] = f"{request.path}?{urllib.parse.urlencode(params)}"
        if (why := self._source.unavailable) is not None:
            doc["unavailable"] = why
        return doc

    async def summary(self, request: web.Request) -> web.Response:
        """Every target's uptime, strip and incidents, and the supervisor itself."""
        doc = await self._read(self._source.summary)
        doc["supervisor"] = self._about()
        return _json(doc)

    async def target(self, request: web.Request) -> web.Response:
        """One target's uptime per window, incidents and recent probe results."""
        name = request.match_info["target"]
        doc = await self._read(self._source.target, name)
        if doc is None:
            return _json({"error": f"no target named {name!r}"}, 404)
        return _json(doc)
