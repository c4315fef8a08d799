"""GET /events/stream: new events as Server-Sent Events, for live views.

A bounded number of clients, each with a bounded queue: a client that cannot keep up (its
queue fills, or one write stalls) is dropped, never buffered without limit. Publishing is
O(clients) and never waits, so a burst of events never delays supervision. A client that
closes its socket is let go at once (the server cancels its handler, see `api.transport`),
not at the next keep-alive ping. Events are sent as /events shows them (`render.public_event`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

from supervisor.api.render import public_event

log = logging.getLogger(__name__)

MAX_CLIENTS = 16
QUEUE_SIZE = 256  # events a client may lag behind before it is dropped
_WRITE_TIMEOUT_S = 5.0
_PING_S = 15.0  # a comment line now and then: proxies keep the stream, dead peers show
_RETRY_MS = 3000  # EventSource reconnects after this


class _Client:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False


class EventStream:
    """The SSE hub: `publish` from the loop, `handle` per client."""

    def __init__(self, max_clients: int = MAX_CLIENTS) -> None:
        self._max = max_clients
        self._clients: set[_Client] = set()
        self.dropped = 0  # clients dropped for being slow

    def add_to(self, app: web.Application) -> None:
        """Register GET /events/stream (named "...-stream": no handler timeout)."""
        app.router.add_get("/events/stream", self.handle, name="events-stream")

    @property
    def clients(self) -> int:
        """Connected clients."""
        return len(self._clients)

    def publish(self, event_id: int, doc: dict[str, Any]) -> None:
        """Send one event to every client; drop those whose queue is full."""
        if not self._clients:
            return
        frame = f"id: {event_id}\nevent: event\ndata: {json.dumps(public_event(doc))}\n\n".encode()
        for client in list(self._clients):
            try:
                client.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._drop(client, "fell behind")

    def close(self) -> None:
        """End every stream (shutdown)."""
        for client in list(self._clients):
            self._clients.discard(client)
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(None)

    def _drop(self, client: _Client, why: str) -> None:
        if client in self._clients:
            self._clients.discard(client)
            client.dropped = True
            self.dropped += 1
            log.warning("event stream: dropped a client that %s", why)
            # Wake its writer so it ends now; a full queue gets its first item replaced.
            with contextlib.suppress(asyncio.QueueEmpty):
                client.queue.get_nowait()
            client.queue.put_nowait(None)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One client's stream, until it leaves, falls behind or we stop."""
        if len(self._clients) >= self._max:
            raise web.HTTPServiceUnavailable(
                reason=f"too many event-stream clients (max {self._max})",
                headers={"Retry-After": "10"},
            )
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        client = _Client()
        self._clients.add(client)
        try:
            await resp.prepare(request)
            await resp.write(f"retry: {_RETRY_MS}\n: connected\n\n".encode())
            await self._pump(client, resp)
        except ConnectionError:
            pass  # the client left
        finally:
            self._clients.discard(client)
        return resp

    async def _pump(self, client: _Client, resp: web.StreamResponse) -> None:
        while True:
            try:
                async with asyncio.timeout(_PING_S):
                    frame = await client.queue.get()
            except TimeoutError:
                frame = b": ping\n\n"
            if frame is None:
                return
            try:
                async with asyncio.timeout(_WRITE_TIMEOUT_S):
                    await resp.write(frame)
            except TimeoutError:
                self._drop(client, "stopped reading")
                return
