"""The HTTP adapter: /health, /health/{target} and /metrics on 127.0.0.1 by default (and
the routes given to it: history, the event stream, the status page).

Every answer is rendered from memory; a request never runs a check, so it cannot be used
to load the host. Health documents are rendered once per snapshot version and /metrics at
most once a second (every probe result is a new version), so a busy client costs little;
what each request costs in CPU time is charged to its client, and a client over its share
is throttled (429, see `guard.throttle`).
Only loopback or configured Host names are served (a page in a local browser must not
read us through DNS rebinding). The listening side (and its connection cap) is in
`api.transport`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol

from aiohttp import hdrs, web

from supervisor.api import render
from supervisor.api.attempts import KeyAttempts
from supervisor.config import API_KEY_HEADER
from supervisor.guard.throttle import METER, Meter, Throttle
from supervisor.model import Clock, Hold, Snapshot, SystemClock
from supervisor.times import parse_duration

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_HANDLER_TIMEOUT_S = 5.0
_METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format
_METRICS_MAX_AGE_S = 1.0
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_ANY_ADDRESS = ("", "0.0.0.0", "::")
_THROTTLED = json.dumps({"error": "busy: this client used its share of our CPU; retry later"})
_SHOWN_CHARS = 100  # client-given text in a log line: quoted and cut to this


def shown(text: str | None) -> str:
    """Client-given text (a path, a header) for a log line: quoted, so it can never start a
    line of its own, and cut short."""
    if text is None:
        return "none"
    return repr(text[:_SHOWN_CHARS]) + ("..." if len(text) > _SHOWN_CHARS else "")


def _reserve(path: str) -> str | None:
    """The reserve a request may be answered from over its client's share: /health and
    /metrics are rendered once per snapshot, so cheap (`guard.throttle`)."""
    if path == "/metrics":
        return path
    return "/health" if path == "/health" or path.startswith("/health/") else None


async def _plain_headers(request: web.Request, response: web.StreamResponse) -> None:
    """No version banner; a browser never second-guesses our content types."""
    response.headers.popall(hdrs.SERVER, None)
    response.headers["X-Content-Type-Options"] = "nosniff"


def served_hosts(host: str, port: int, allowed: Collection[str] = ()) -> frozenset[str]:
    """Host header values served: loopback names, the bound address, configured ones."""
    names = {*LOOPBACK_NAMES, *(h.lower() for h in allowed)}
    if host not in _ANY_ADDRESS:
        names.update({host.lower(), f"{host.lower()}:{port}"})
    return frozenset(names)


def host_allowed(value: str | None, names: Collection[str]) -> bool:
    """True for no Host header (HTTP/1.0), or one whose name (any port) or value is listed."""
    if value is None:
        return True
    host = value.strip().lower()
    if host in names:
        return True
    if host.startswith("["):  # an IPv6 literal: [::1] or [::1]:5051
        name, _, rest = host[1:].partition("]")
        port_ok = rest == "" or (rest.startswith(":") and _is_port(rest[1:]))
        return port_ok and name in names
    name, sep, port = host.partition(":")
    return bool(sep) and _is_port(port) and name in names


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


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
        log.warning("request %s %s timed out", request.method, shown(request.path))
        return _json({"error": "handler timed out"}, 503)
    except Exception:
        log.exception("request %s %s failed", request.method, shown(request.path))
        return _json({"error": "internal error"}, 500)


class HoldControl(Protocol):
    """Holds, as the daemon carries them out (ValueError: the request cannot be done)."""

    def hold(self, name: str, for_s: float | None, reason: str, by: str) -> Hold:
        """Hold a target."""

    def release(self, name: str, by: str) -> Hold | None:
        """End a hold; None if there was none."""


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
        clock: Clock | None = None,
        throttle: Throttle | None = None,
        hosts: Collection[str] = LOOPBACK_NAMES,
        reset: Callable[[str], bool] | None = None,
        holds: HoldControl | None = None,
        api_key: str | None = None,
        attempts: KeyAttempts | None = None,
        routes: Sequence[Routes] = (),
    ) -> None:
        self._routes = routes
        self._snapshot = snapshot
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._throttle = throttle
        self._hosts = frozenset(hosts)
        self._reset = reset
        self._holds = holds
        self._api_key = api_key.encode() if api_key else None
        self._attempts = attempts or KeyAttempts(self._clock)
        self._version = -1
        self._rendered: dict[str, tuple[bytes, int]] = {}  # for self._version
        self._metrics_at, self._metrics_body = 0.0, b""

    def use(self, snapshot: Callable[[], Snapshot], reset: Callable[[str], bool]) -> None:
        """Serve this snapshot and reset through this from now on (a reload's new fleet)."""
        self._snapshot, self._reset = snapshot, reset

    def build(self) -> web.Application:
        """The aiohttp application (small bodies only: nothing here takes uploads)."""
        middlewares = [self._throttled, _errors, self._host_checked]
        app = web.Application(middlewares=middlewares, client_max_size=4096)
        app.on_response_prepare.append(_plain_headers)
        app.router.add_get("/health", self.health)
        app.router.add_get("/health/{target}", self.health_target)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post("/targets/{target}/reset", self.reset)
        app.router.add_post("/targets/{target}/hold", self.hold)
        app.router.add_delete("/targets/{target}/hold", self.release)
        for routes in self._routes:
            routes.add_to(app)
        return app

    @web.middleware
    async def _throttled(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Outermost: refuse a client over its CPU share (what it costs is charged to it)."""
        throttle = self._throttle
        if throttle is None:
            return await handler(request)
        client = request.remote or "unknown"
        wait_s = throttle.admit(client, _reserve(request.path), self._clock.monotonic())
        if wait_s is not None:
            return web.Response(
                status=429,
                text=_THROTTLED,
                content_type="application/json",
                headers={"Retry-After": str(wait_s)},
            )
        # The loop's CPU is charged step by step by the transport; a worker thread's here.
        meter = Meter()
        token = METER.set(meter)
        try:
            return await handler(request)
        finally:
            METER.reset(token)
            if meter.worker_s:
                throttle.charge(client, meter.worker_s, self._clock.monotonic())

    @web.middleware
    async def _host_checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get(hdrs.HOST)
        if host_allowed(host, self._hosts):
            return await handler(request)
        log.warning(
            "refused %s %s from %s: Host %s is not served here (see http.allowed_hosts)",
            request.method,
            shown(request.path),
            request.remote,
            shown(host),
        )
        why = f"Host {shown(host)} is not served here: add it to [http] allowed_hosts"
        return _json({"error": why}, 421)

    def _cached(
        self, key: str, render_doc: Callable[[Snapshot], tuple[bytes, int]]
    ) -> tuple[bytes, int]:
        """A document rendered once per snapshot version."""
        snap = self._snapshot()
        if snap.version != self._version:
            self._version, self._rendered = snap.version, {}
        if key not in self._rendered:
            self._rendered[key] = render_doc(snap)
        return self._rendered[key]

    async def health(self, request: web.Request) -> web.Response:
        """The whole fleet."""
        body, code = self._cached("", _render_health)
        return web.Response(body=body, status=code, content_type=render.HEALTH_CONTENT_TYPE)

    async def health_target(self, request: web.Request) -> web.Response:
        """One target; 404 with a reason for a name we do not watch."""
        name = request.match_info["target"]
        snap = self._snapshot()
        if snap.target(name) is None:
            known = [t.name for t in snap.targets]
            return _json({"error": f"no target named {name!r}", "targets": known}, 404)
        body, code = self._cached(name, lambda s: _render_target(s, name))
        return web.Response(body=body, status=code, content_type=render.HEALTH_CONTENT_TYPE)

    async def reset(self, request: web.Request) -> web.Response:
        """Clear a given-up target so recovery may act at once (needs the API key)."""
        denied = await self._authorize(request)
        if denied is not None:
            return denied
        name = request.match_info["target"]
        if self._reset is None or not self._reset(name):
            return _json({"error": f"no target named {name!r}"}, 404)
        return _json({"target": name, "reset": True}, 200)

    async def hold(self, request: web.Request) -> web.Response:
        """Hold a target: `{"for": "20m", "reason": "deploy"}` (both optional; API key)."""
        denied = await self._held_target(request)
        if denied is not None:
            return denied
        assert self._holds is not None  # checked by _held_target
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _json({"error": "the body must be a JSON object"}, 400)
        name = request.match_info["target"]
        try:
            span = body.get("for", request.query.get("for"))
            for_s = None if span is None else parse_duration(str(span))
            reason = str(body.get("reason", request.query.get("reason", "")))
            hold = self._holds.hold(name, for_s, reason, f"http:{request.remote}")
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"target": name, "hold": render.hold_document(hold)}, 200)

    async def release(self, request: web.Request) -> web.Response:
        """End a hold (API key)."""
        denied = await self._held_target(request)
        if denied is not None:
            return denied
        assert self._holds is not None
        name = request.match_info["target"]
        ended = self._holds.release(name, f"http:{request.remote}")
        return _json({"target": name, "released": ended is not None}, 200)

    async def _held_target(self, request: web.Request) -> web.Response | None:
        denied = await self._authorize(request)
        if denied is not None:
            return denied
        name = request.match_info["target"]
        if self._holds is None or self._snapshot().target(name) is None:
            return _json({"error": f"no target named {name!r}"}, 404)
        return None

    async def _authorize(self, request: web.Request) -> web.Response | None:
        if self._api_key is None:
            return _json({"error": "state-changing endpoints are off: set http.api_key"}, 403)
        client = request.remote or "unknown"
        # After a failure the client's next attempt must wait (doubling, up to a cap): one
        # that comes sooner is answered at once, key unread. No socket is ever held.
        wait_s = self._attempts.wait_s(client)
        if wait_s > 0:
            why = f"too many wrong {API_KEY_HEADER} headers from {client}: retry later"
            resp = _json({"error": why}, 429)
            resp.headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
            return resp
        # Constant-time comparison: the time taken says nothing about the key. Header bytes
        # that are not UTF-8 arrive as surrogate escapes; they are a wrong key, not an error.
        given = request.headers.get(API_KEY_HEADER, "").encode("utf-8", "surrogateescape")
        if hmac.compare_digest(given, self._api_key):
            self._attempts.succeeded(client)
            return None
        failures, hold_s = self._attempts.failed(client)
        log.warning(
            "refused %s %s from %s: missing or wrong %s header (next attempt in %.2g s)",
            request.method,
            shown(request.path),
            client,
            API_KEY_HEADER,
            hold_s,
        )
        why = f"missing or wrong {API_KEY_HEADER} header ({failures} in a row from {client})"
        return _json({"error": why}, 401)

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text format, rendered at most once a second."""
        now = self._clock.monotonic()
        if not self._metrics_body or now - self._metrics_at >= _METRICS_MAX_AGE_S:
            self._metrics_at, self._metrics_body = now, self._metrics()
        return web.Response(body=self._metrics_body, headers={"Content-Type": _METRICS_TYPE})


def _render_health(snap: Snapshot) -> tuple[bytes, int]:
    return json.dumps(render.health_document(snap)).encode(), render.http_code(snap.status)


def _render_target(snap: Snapshot, name: str) -> tuple[bytes, int]:
    target = snap.target(name)
    assert target is not None  # the caller checked
    body = json.dumps(render.target_document(snap, target)).encode()
    return body, render.http_code(target.status)
