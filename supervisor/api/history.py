"""GET /events, /history and /history/{target}: the history, read-only, as JSON.

The store is read in a worker thread, so a slow disk never holds up the event loop that
supervises.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from supervisor.history.events import EventQuery, HistorySource, Kind, parse_time

MAX_LIMIT = 1000
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


def parse_query(params: Any, now: float) -> EventQuery:
    """The query string of /events as an EventQuery; HTTPBadRequest saying what is wrong."""
    kind = params.get("kind") or None
    if kind is not None and kind not in Kind._value2member_map_:
        raise _bad(f"kind must be one of {', '.join(k.value for k in Kind)}")
    times: dict[str, float | None] = {}
    for key in ("since", "until"):
        raw = params.get(key)
        try:
            times[key] = parse_time(raw, now) if raw else None
        except ValueError as exc:
            raise _bad(f"{key}: {exc}") from None
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
        before = int(params["before"]) if params.get("before") else None
    except ValueError:
        raise _bad("limit and before must be whole numbers") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _bad(f"limit must be 1..{MAX_LIMIT}")
    return EventQuery(
        target=params.get("target") or None,
        kind=kind,
        since=times["since"],
        until=times["until"],
        before=before,
        limit=limit,
    )


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
        self._cache: dict[str, tuple[object, bytes]] = {}

    async def _read(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._reads, call, *args)

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
        # `since=2h` moves with the clock: such a page is kept for the second it was made in.
        relative = any(not _absolute(request.query.get(k, "")) for k in ("since", "until"))
        version = (self._source.version, int(time.time()) if relative else 0)
        cached = self._cache.get(request.query_string)
        if cached is not None and cached[0] == version:
            return _raw(cached[1])
        body = json.dumps(await self._page(request)).encode()
        if len(self._cache) >= _CACHED_PAGES:
            self._cache.clear()
        self._cache[request.query_string] = (version, body)
        return _raw(body)

    async def _page(self, request: web.Request) -> dict[str, Any]:
        query = parse_query(request.query, time.time())
        found, stored = await self._read(self._source.events, query)
        doc: dict[str, Any] = {
            "events": [e.document() for e in found],
            "source": "store" if stored else "memory",
            "next": None,
        }
        if len(found) == query.limit:
            params = {**request.query, "before": str(found[-1].id)}
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
