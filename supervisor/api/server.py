"""The HTTP adapter: /health, /health/{target} and /metrics on 127.0.0.1 by default (and
the routes given to it: history, the event stream, the status page).

Every answer is rendered from memory; a request never runs a check, so it cannot be used
to load the host. Rendered health documents are cached per snapshot version.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from supervisor.api import render
from supervisor.config import API_KEY_HEADER
from supervisor.model import Snapshot

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_HANDLER_TIMEOUT_S = 5.0
_METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """What the server needs from the config."""

    host: str = "127.0.0.1"
    port: int = 5051
    access_log: bool = False


def _json(doc: dict[str, Any], status: int, content_type: str = "application/json") -> web.Response:
    return web.Response(body=json.dumps(doc).encode(), status=status, content_type=content_type)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is JSON with a reason; no traceback ever reaches a client."""
    # A stream (a route named "...-stream") lives as long as its client: no handler timeout.
    name = request.match_info.route.name or ""
    try:
        async with asyncio.timeout(None if name.endswith("-stream") else _HANDLER_TIMEOUT_S):
            return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        resp = _json({"error": exc.reason, "path": request.path}, exc.status)
        resp.headers.update(headers)
        return resp
    except TimeoutError:
        log.warning("request %s %s timed out", request.method, request.path)
        return _json({"error": "handler timed out"}, 503)
    except Exception:
        log.exception("request %s %s failed", request.method, request.path)
        return _json({"error": "internal error"}, 500)


class Routes(Protocol):
    """More routes on the same app (history, the event stream, the status page)."""

    def add_to(self, app: web.Application) -> None:
        """Register them."""


class HealthApp:
    """Routes over a snapshot provider and a metrics renderer, plus guarded actions."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        metrics: Callable[[], bytes],
        *,
        reset: Callable[[str], bool] | None = None,
        api_key: str | None = None,
        routes: Sequence[Routes] = (),
    ) -> None:
        self._routes = routes
        self._snapshot = snapshot
        self._metrics = metrics
        self._reset = reset
        self._api_key = api_key.encode() if api_key else None
        self._cache: tuple[int, bytes, int] | None = None

    def build(self) -> web.Application:
        """The aiohttp application (small bodies only: nothing here takes uploads)."""
        app = web.Application(middlewares=[_errors], client_max_size=4096)
        app.router.add_get("/health", self.health)
        app.router.add_get("/health/{target}", self.health_target)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post("/targets/{target}/reset", self.reset)
        for routes in self._routes:
            routes.add_to(app)
        return app

    async def health(self, request: web.Request) -> web.Response:
        """The whole fleet."""
        snap = self._snapshot()
        if self._cache is None or self._cache[0] != snap.version:
            body = json.dumps(render.health_document(snap)).encode()
            self._cache = (snap.version, body, render.http_code(snap.status))
        _version, body, code = self._cache
        return web.Response(body=body, status=code, content_type=render.HEALTH_CONTENT_TYPE)

    async def health_target(self, request: web.Request) -> web.Response:
        """One target; 404 with a reason for a name we do not watch."""
        name = request.match_info["target"]
        snap = self._snapshot()
        target = snap.target(name)
        if target is None:
            known = [t.name for t in snap.targets]
            return _json({"error": f"no target named {name!r}", "targets": known}, 404)
        doc = render.target_document(snap, target)
        return _json(doc, render.http_code(target.status), render.HEALTH_CONTENT_TYPE)

    async def reset(self, request: web.Request) -> web.Response:
        """Clear a given-up target so recovery may act at once (needs the API key)."""
        denied = self._authorize(request)
        if denied is not None:
            return denied
        name = request.match_info["target"]
        if self._reset is None or not self._reset(name):
            return _json({"error": f"no target named {name!r}"}, 404)
        return _json({"target": name, "reset": True}, 200)

    def _authorize(self, request: web.Request) -> web.Response | None:
        if self._api_key is None:
            return _json({"error": "state-changing endpoints are off: set http.api_key"}, 403)
        given = request.headers.get(API_KEY_HEADER, "").encode()
        # Constant-time comparison: the time taken says nothing about the key.
        if not hmac.compare_digest(given, self._api_key):
            return _json({"error": f"missing or wrong {API_KEY_HEADER} header"}, 401)
        return None

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text format."""
        return web.Response(body=self._metrics(), headers={"Content-Type": _METRICS_TYPE})


class HttpServer:
    """Runs an application on a TCP port; `port` is the bound one (useful with port 0)."""

    def __init__(self, app: web.Application, settings: HttpSettings) -> None:
        self._app = app
        self._settings = settings
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    async def start(self) -> None:
        """Bind and serve; raises OSError if the port is taken."""
        runner = web.AppRunner(
            self._app,
            handle_signals=False,
            access_log=log if self._settings.access_log else None,
            keepalive_timeout=5.0,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._settings.host, self._settings.port, backlog=256)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        # The bound address tells the real port when port 0 was asked for.
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
