"""What keeps clients from hurting the supervisor through HTTP, on real loopback sockets:
the /metrics cache, throttling, Host checks, API-key attempts, header bytes, the cap."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from supervisor.api.attempts import KeyAttempts
from supervisor.api.metrics import Metrics
from supervisor.api.server import HealthApp, host_allowed, served_hosts
from supervisor.api.transport import HttpServer, HttpSettings
from supervisor.guard.throttle import Throttle
from supervisor.model import ActiveState, UnitState
from supervisor.watch.health import HealthModel
from tests.clock import FakeClock
from tests.integration.harness import until

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
KEY = "0123456789abcdef-key"


def stop_dashboard(model: HealthModel) -> None:
    state = UnitState(unit="dashboard.service", active_state=ActiveState.INACTIVE, sub_state="dead")
    model.apply_unit("dashboard", state)


async def test_metrics_are_rendered_at_most_once_a_second(
    aiohttp_client: Client, model: HealthModel, metrics: Metrics
) -> None:
    clock = FakeClock()
    c = await aiohttp_client(HealthApp(model.snapshot, metrics.render, clock=clock).build())
    up = 'supervisor_target_up{target="dashboard"} 1.0'
    assert up in await (await c.get("/metrics")).text()
    stop_dashboard(model)
    clock.advance(0.9)
    assert up in await (await c.get("/metrics")).text()  # the same rendering, within 1 s
    clock.advance(0.1)
    assert 'supervisor_target_up{target="dashboard"} 0.0' in await (await c.get("/metrics")).text()


async def test_health_documents_follow_the_snapshot_at_once(
    aiohttp_client: Client, model: HealthModel, metrics: Metrics
) -> None:
    c = await aiohttp_client(HealthApp(model.snapshot, metrics.render).build())
    assert (await c.get("/health/dashboard")).status == 200
    stop_dashboard(model)
    assert (await c.get("/health/dashboard")).status == 503  # cached per version only


async def test_over_budget_answers_429_with_retry_after(
    aiohttp_client: Client, model: HealthModel, metrics: Metrics
) -> None:
    clock, throttle = FakeClock(), Throttle(rate_per_s=1, burst=1)
    app = HealthApp(model.snapshot, metrics.render, clock=clock, throttle=throttle)
    c = await aiohttp_client(app.build())
    assert (await c.get("/health")).status == 200  # not limited: everything is answered
    throttle.observe(over_budget=True, now=clock.monotonic(), interval_s=2.0)
    assert (await c.get("/metrics")).status == 200  # the burst
    refused = await c.get("/health")
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "2"
    assert "over budget" in (await refused.json())["error"]
    clock.advance(1.0)
    assert (await c.get("/health")).status == 200  # the admitted rate


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        (None, True),  # HTTP/1.0 without a Host header
        ("127.0.0.1:5051", True),
        ("localhost", True),
        ("LOCALHOST:5051", True),
        ("[::1]:5051", True),
        ("[::1]", True),
        ("box.lan:5051", True),  # configured
        ("evil.example:5051", False),  # DNS rebinding: a page's own name on our address
        ("localhost.evil.example", False),
        ("127.0.0.1:5051@evil", False),
        ("127.0.0.1:99999999", False),
        ("[::1]x", False),
        ("", False),
        ("localhost:\udcff", False),
    ],
)
def test_host_names(host: str | None, allowed: bool) -> None:
    assert host_allowed(host, served_hosts("127.0.0.1", 5051, ["box.lan"])) is allowed


def test_a_bound_address_is_served_but_any_address_is_not_a_name() -> None:
    assert host_allowed("10.0.0.5:5051", served_hosts("10.0.0.5", 5051))
    assert not host_allowed("0.0.0.0:5051", served_hosts("0.0.0.0", 5051))


async def test_a_foreign_host_header_is_refused_with_a_reason(
    aiohttp_client: Client,
    model: HealthModel,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = await aiohttp_client(HealthApp(model.snapshot, metrics.render).build())
    for path in ("/health", "/metrics", "/health/trader"):
        resp = await c.get(path, headers={"Host": "evil.example:5051"})
        assert resp.status == 421
        assert "allowed_hosts" in (await resp.json())["error"]
    assert (await c.get("/health", headers={"Host": "localhost:5051"})).status == 200
    assert "Host 'evil.example:5051' is not served here" in caplog.text


def key_app(model: HealthModel, metrics: Metrics, first: float, most: float) -> HealthApp:
    attempts = KeyAttempts(FakeClock(), first_delay_s=first, max_delay_s=most)
    return HealthApp(
        model.snapshot, metrics.render, reset=lambda n: True, api_key=KEY, attempts=attempts
    )


async def test_failed_keys_are_logged_and_held_longer_each_time(
    aiohttp_client: Client,
    model: HealthModel,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = await aiohttp_client(key_app(model, metrics, first=0.05, most=0.2).build())
    loop = asyncio.get_running_loop()
    held = []
    for _ in range(3):
        started = loop.time()
        resp = await c.post("/targets/trader/reset", headers={"X-API-Key": "guess-0123456789"})
        held.append(loop.time() - started)
        assert resp.status == 401
    assert held[2] >= 0.2
    assert "3 in a row from 127.0.0.1" in (await resp.json())["error"]
    assert "refused POST /targets/trader/reset from 127.0.0.1: missing or wrong" in caplog.text
    assert "guess" not in caplog.text


async def test_a_guessing_client_never_delays_the_right_key(
    aiohttp_client: Client, model: HealthModel, metrics: Metrics
) -> None:
    c = await aiohttp_client(key_app(model, metrics, first=5.0, most=5.0).build())
    wrong = asyncio.ensure_future(c.post("/targets/trader/reset", headers={"X-API-Key": "nope"}))
    right = await c.post("/targets/trader/reset", headers={"X-API-Key": KEY})
    assert right.status == 200
    assert not wrong.done()  # still held: only the failure pays
    wrong.cancel()


@pytest.fixture
async def server(model: HealthModel, metrics: Metrics) -> AsyncIterator[HttpServer]:
    app = key_app(model, metrics, first=0.0, most=0.0)
    srv = HttpServer(app.build(), HttpSettings(port=0, max_connections=2))
    await srv.start()
    yield srv
    await srv.stop()


async def raw(port: int, request: bytes) -> bytes:
    """Send raw bytes; everything the server answers until it closes or one reply is in."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        return head
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    finally:
        writer.close()


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else 0


async def test_no_header_bytes_give_a_server_error(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    port = server.port
    for byte in [*range(0x01, 0x20), *range(0x7F, 0x100)]:
        junk = b"k" + bytes([byte]) + b"ey"
        requests = [
            b"POST /targets/trader/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: %s\r\n" % junk,
            b"GET /health HTTP/1.1\r\nHost: %s\r\n" % junk,
            b"GET /health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: %s\r\n" % junk,
        ]
        for request in requests:
            reply = await raw(port, request + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            code = status_of(reply)
            assert code == 200 or 400 <= code < 500, (byte, request, reply[:80])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_connections_over_the_cap_are_closed_at_once(server: HttpServer) -> None:
    get = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    for reader, writer in held:  # two keep-alive connections, answered and kept open
        writer.write(get)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    assert server.connections == 2
    refused = await raw(server.port, get)
    assert refused.startswith(b"HTTP/1.1 503 Service Unavailable")
    held[0][1].close()
    await until(lambda: server.connections < 2, 5, "the server to see the close")
    assert status_of(await raw(server.port, get)) == 200
    held[1][1].close()
