"""The listening side of the HTTP adapter: a TCP site with a connection cap, and the server
that runs the application on it.

At most `max_connections` connections are open at once; one more is told why and closed at
once, so clients (1,100 held keep-alive connections, say) can never take the descriptors
that probes need. Every connection and every chunk a client sends is reported through
`activity`, so the throttle knows when serving is busy even when requests never reach a
handler (malformed ones, refused connections).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

# Sent to a connection over the cap before it is closed: no parsing, no handler, no task.
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 26\r\n\r\ntoo many open connections\n"
)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """What the server needs from the config."""

    host: str = "127.0.0.1"
    port: int = 5051
    access_log: bool = False
    max_connections: int = 64


class _ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's log of requests it could not parse: a client's doing, not ours, so one
    warning line naming the client and the reason, never a traceback (handler errors are
    logged by the app's own middleware)."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Anything at ERROR or above becomes one warning line."""
        if level < logging.ERROR:
            self.logger.log(level, msg, *args)
            return
        exc = kwargs.get("exc_info")
        reason = getattr(exc, "message", None) or type(exc).__name__
        self.logger.warning("%s: %s", str(msg) % args, str(reason).strip())


class _Counted(asyncio.Protocol):
    """One connection under the cap: aiohttp's handler, counted while it is open."""

    def __init__(self, handler: asyncio.Protocol, site: _CappedSite) -> None:
        self._handler = handler
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._site.activity()
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._site.activity()
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._site.closed()
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()


class _Refused(asyncio.Protocol):
    """A connection over the cap: told why and closed at once, its descriptor freed."""

    def __init__(self, site: _CappedSite) -> None:
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._site.activity()
        assert isinstance(transport, asyncio.Transport)
        transport.write(_FULL)
        transport.close()


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
    ) -> None:
        super().__init__(runner, backlog=256)
        self._settings = settings
        self.activity = activity  # every connection and every chunk a client sends
        self.open = 0
        self._refusing = False

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
        if self.open >= cap:
            if not self._refusing:
                log.warning(
                    "refusing HTTP connections: %d open, the cap (http.max_connections)", cap
                )
                self._refusing = True
            return _Refused(self)
        self.open += 1
        return _Counted(server(), self)

    def closed(self) -> None:
        """A counted connection ended."""
        self.open -= 1
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
    ) -> None:
        self._app = app
        self._settings = settings
        self._activity = activity
        self._runner: web.AppRunner | None = None
        self._site: _CappedSite | None = None
        self.port = settings.port

    @property
    def connections(self) -> int:
        """Connections open now (at most `max_connections`)."""
        return self._site.open if self._site is not None else 0

    async def start(self) -> None:
        """Bind and serve; raises OSError if the port is taken."""
        runner = web.AppRunner(
            self._app,
            handle_signals=False,
            access_log=log if self._settings.access_log else None,
            logger=_ProtocolLog(log),
            keepalive_timeout=5.0,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        site = _CappedSite(runner, self._settings, self._activity)
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
