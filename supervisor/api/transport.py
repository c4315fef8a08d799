"""The listening side of the HTTP adapter: a TCP site with a connection cap, and the server
that runs the application on it.

At most `max_connections` connections are open at once; one more is told why and closed at
once (cleanly: `refusal.py`), so clients (1,100 held keep-alive connections, say) can never
take the descriptors that probes need. The last few slots are a reserve for short GETs
(/health, /metrics): a connection there must ask for one at once, is closed after a second
without a request, and gives way to a newer one when the reserve is full, so idle or slow
sockets can never make /health answer "too many open connections". Every connection and
every chunk a client sends is reported through `activity`.

What serving costs is measured here, where all of it happens: the CPU time of every step
of a connection's tasks (aiohttp's request loop and each request, handler, errors and
writing included) and of parsing what it sent is reported through `charge`, against the
client's address. So a refused (429) or malformed request costs its client too, and the
breaker is told exactly how much of our CPU went to serving.

aiohttp's log of requests it could not parse is cut down to a category and the client
address, at most one line a minute per category with a count: its own text quotes the
header line (an API key with it) and would flood the journal.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from supervisor.api.metering import Metered
from supervisor.api.quiet import ClientErrorLog, Tally
from supervisor.api.refusal import Refusal, Refusals, Refused

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """What the server needs from the config."""

    host: str = "127.0.0.1"
    port: int = 5051
    access_log: bool = False
    max_connections: int = 64


RESERVE_MAX = 8  # slots kept for short GETs (at most a quarter of max_connections)
RESERVE_IDLE_S = 1.0  # a reserve connection without a request this long is closed
_SHORT_GET = re.compile(rb"GET /(health|metrics)[ /?]")
_SHORT_GET_LEN = len(b"GET /metrics ")


Charge = Callable[[str, float], None]  # (client address, CPU seconds)


class _MeteredHandler(web.RequestHandler):
    """aiohttp's connection handler, whose tasks (its request loop, each request) come back
    metered: aiohttp makes them from `self.start()` and `self._handle_request(...)`."""

    __slots__ = ("conn",)

    def __init__(self, server: web.Server, conn: _Counted) -> None:
        # What `web.Server.__call__` does, with this class.
        super().__init__(server, loop=server._loop, **server._kwargs)
        self.conn = conn

    def start(self) -> Metered:
        """The connection's request loop, metered."""
        return Metered(super().start(), self.conn)

    def _handle_request(self, *args: Any) -> Metered:
        return Metered(self._answering(super()._handle_request(*args)), self.conn)

    async def _answering(self, request: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await request
        finally:
            self.conn.answering = False

    def handle_error(self, *args: Any, **kwargs: Any) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse, without its version banner."""
        resp = super().handle_error(*args, **kwargs)
        resp.headers[hdrs.SERVER] = "sidecar-supervisor"  # else aiohttp adds its own
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp


class _Counted(asyncio.Protocol):
    """One connection under the cap: aiohttp's handler, counted while it is open.

    A connection in the reserve (`reserve=True`) must ask for a short GET in its first
    bytes and is closed after `RESERVE_IDLE_S` without a request.
    """

    def __init__(self, server: web.Server, site: _CappedSite, reserve: bool) -> None:
        self._handler = _MeteredHandler(server, self)
        self._site = site
        self.client = "unknown"
        self.reserve = reserve
        self._head = b""  # the first bytes of a reserve connection, until judged
        self._judged = not reserve
        self.transport: asyncio.Transport | None = None
        self.active_at = time.monotonic()
        self._idle: asyncio.TimerHandle | None = None
        self._evicted = False
        self._given = False  # bytes handed to aiohttp: it may be answering
        self._ending: asyncio.Task[None] | None = None  # held: the loop keeps weak references
        self.answering = False  # a request came and its answer is not out yet
        self._refusal: Refusal | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        self._site.activity()
        self._handler.connection_made(transport)
        if self._evicted:  # gave way before it was even made
            self.refuse()
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._site.activity()
        if self._refusal is not None:
            self._refusal.received(data)
            return
        self.active_at = time.monotonic()
        self._arm()
        if not self._judged:
            self._head += data
            if len(self._head) < _SHORT_GET_LEN and b"\n" not in self._head:
                return  # too little to judge yet
            self._judged = True
            data, self._head = self._head, b""
            if not _SHORT_GET.match(data):
                self._head = data  # read, so the refusal sees where its request ends
                self.refuse()
                return
        self._given = self.answering = True
        self.metered(self._handler.data_received, data)

    def metered(self, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)`, its CPU time charged to this client (once: a step that runs
        another at once, as an eager task does, is charged as a whole)."""
        site = self._site
        if site.metering:
            return call(*args)
        site.metering = True
        started = time.thread_time()
        try:
            return call(*args)
        finally:
            site.metering = False
            site.charge(self.client, time.thread_time() - started)

    def refuse(self) -> None:
        """Gives way. With a request handed to aiohttp: closed once its answer is out (a clean
        end of its keep-alive); with none: refused like a connection over the cap, so the
        client reads the 503, never a reset from a request closed on unread."""
        self._evicted = True
        transport = self.transport
        if transport is None or transport.is_closing() or self._refusal is not None:
            return
        if self._given and not self.answering:
            self._handler.force_close()  # between requests: nothing unread, a clean close
            return
        if self._given:  # aiohttp's own graceful end: the answer in flight, then the close
            self._ending = asyncio.get_running_loop().create_task(
                self._handler.shutdown(RESERVE_IDLE_S)
            )
            return
        head, self._head = self._head, b""
        self._refusal = Refusal(self._site.refusals, transport, head)
        self._site.closed(self)  # its slot is free now: it only lingers to end cleanly

    def _arm(self) -> None:
        if not self.reserve:
            return
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(RESERVE_IDLE_S, self.refuse)

    def eof_received(self) -> bool | None:
        self._handler.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self._refusal is not None:
            self._refusal.ended()
        else:
            self._site.closed(self)
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()


class _CappedSite(web.BaseSite):
    """A TCP site whose protocol factory refuses connections beyond `cap`.

    Counted in the factory, not in aiohttp's connection list: asyncio accepts a whole
    backlog before any `connection_made` runs, so a list would lag behind by that much.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        settings: HttpSettings,
        activity: Callable[[], None],
        charge: Charge,
    ) -> None:
        super().__init__(runner, backlog=256)
        self._settings = settings
        self.activity = activity  # every connection and every chunk a client sends
        self.charge = charge  # CPU seconds spent serving a client
        self.metering = False  # inside a metered step
        self.open = 0
        self._reserve = min(RESERVE_MAX, settings.max_connections // 4)
        self._in_reserve: list[_Counted] = []  # oldest first
        self._refusing = False
        self.refusals = Refusals()

    @property
    def name(self) -> str:
        """For aiohttp's logs."""
        return f"http://{self._settings.host}:{self._settings.port}"

    async def start(self) -> None:
        """Bind and listen; OSError if the port is taken."""
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: self._protocol(server),
            self._settings.host,
            self._settings.port,
            backlog=self._backlog,
        )

    def _protocol(self, server: web.Server) -> asyncio.Protocol:
        cap = self._settings.max_connections
        if self.open - len(self._in_reserve) < cap - self._reserve:
            self.open += 1
            return _Counted(server, self, reserve=False)
        if self._in_reserve and len(self._in_reserve) >= self._reserve:
            # The reserve is for requests answered in milliseconds: its oldest connection
            # has had its answer (or never asked), so it gives way to this one.
            self._in_reserve.pop(0).refuse()
        if len(self._in_reserve) < self._reserve:
            self.open += 1
            conn = _Counted(server, self, reserve=True)
            self._in_reserve.append(conn)
            return conn
        if not self._refusing:
            log.warning("refusing HTTP connections: %d open, the cap (http.max_connections)", cap)
            self._refusing = True
        return Refused(self.refusals, self.activity)

    def closed(self, conn: _Counted) -> None:
        """A counted connection ended."""
        self.open -= 1
        if conn in self._in_reserve:
            self._in_reserve.remove(conn)
        if self._refusing and self.open < self._settings.max_connections:
            self._refusing = False
            log.info("accepting HTTP connections again: %d open", self.open)


class HttpServer:
    """Runs an application on a TCP port; `port` is the bound one (useful with port 0)."""

    def __init__(
        self,
        app: web.Application,
        settings: HttpSettings,
        activity: Callable[[], None] = lambda: None,
        charge: Charge = lambda client, cpu_s: None,
    ) -> None:
        self._app = app
        self._settings = settings
        self._activity = activity
        self._charge = charge
        self._runner: web.AppRunner | None = None
        self._site: _CappedSite | None = None
        self.port = settings.port

    @property
    def connections(self) -> int:
        """Connections open now (at most `max_connections`)."""
        return self._site.open if self._site is not None else 0

    @property
    def refusals_ended(self) -> int:
        """Refused connections closed on our side so far."""
        return self._site.refusals.ended if self._site is not None else 0

    async def start(self) -> None:
        """Bind and serve; raises OSError if the port is taken."""
        runner = web.AppRunner(
            self._app,
            handle_signals=False,
            access_log=log if self._settings.access_log else None,
            logger=ClientErrorLog(log, Tally(time.monotonic), client_errors=(HttpProcessingError,)),
            keepalive_timeout=5.0,
            shutdown_timeout=1.0,
            # A client that leaves ends its handler at once: an event stream frees its slot
            # when its socket closes, not at the next keep-alive ping.
            handler_cancellation=True,
        )
        await runner.setup()
        site = _CappedSite(runner, self._settings, self._activity, self._charge)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        # The bound address tells the real port when port 0 was asked for.
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
