"""What keeps clients from hurting the supervisor through HTTP, on real loopback sockets:
the /metrics cache, throttling, Host checks, API-key attempts, header bytes, the cap."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient

from supervisor.api.attempts import KeyAttempts
from supervisor.api.metrics import Metrics
from supervisor.api.refusal import FULL
from supervisor.api.server import HealthApp, host_allowed, served_hosts
from supervisor.api.transport import HttpServer, HttpSettings
from supervisor.guard.throttle import Throttle
from supervisor.model import ActiveState, UnitState
from supervisor.watch.health import HealthModel
from tests.clock import FakeClock
from tests.polling import until

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


class Burner:
    """A route that costs `cpu_s` of CPU time a request (what a history page costs)."""

    def __init__(self, cpu_s: float) -> None:
        self.cpu_s = cpu_s

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/burn", self.burn)

    async def burn(self, request: web.Request) -> web.Response:
        end = time.thread_time() + self.cpu_s
        while time.thread_time() < end:
            pass
        return web.Response(text="done")


@contextlib.asynccontextmanager
async def burning(
    model: HealthModel, metrics: Metrics, clock: FakeClock, throttle: Throttle, cpu_s: float
) -> AsyncIterator[str]:
    """A throttled server (real transport: it measures what serving costs) with /burn."""
    app = HealthApp(
        model.snapshot, metrics.render, clock=clock, throttle=throttle, routes=[Burner(cpu_s)]
    )
    charge = lambda client, cpu_s: throttle.charge(client, cpu_s, clock.monotonic())  # noqa: E731
    srv = HttpServer(app.build(), HttpSettings(port=0), charge=charge)
    await srv.start()
    try:
        yield f"http://127.0.0.1:{srv.port}"
    finally:
        await srv.stop()


async def test_a_client_over_its_cpu_share_gets_429_but_health_and_metrics_answer(
    model: HealthModel, metrics: Metrics
) -> None:
    clock, throttle = FakeClock(), Throttle(share_percent=2.0, burst_s=0.05)
    async with burning(model, metrics, clock, throttle, 0.02) as url, ClientSession() as c:
        codes = [(await c.get(url + "/burn")).status for _ in range(5)]
        # 50 ms of burst, 20 ms of CPU each (measured by the server): the third goes into
        # debt, the rest are refused.
        assert codes == [200, 200, 200, 429, 429]
        refused = await c.get(url + "/burn")
        assert int(refused.headers["Retry-After"]) >= 1  # when it has credit again
        assert "share of our CPU" in (await refused.json())["error"]
        assert (await c.get(url + "/metrics")).status == 200  # the scraper did not pay
        assert (await c.get(url + "/health")).status == 200
        percent, _busy = throttle.observe(1.0)
        assert percent >= 6.0  # 3 x 20 ms, taken off our own CPU before the breaker
        clock.advance(10.0)
        assert (await c.get(url + "/burn")).status == 200  # credit again


async def test_a_scraper_every_15_s_gets_no_429_while_another_client_floods(
    model: HealthModel, metrics: Metrics
) -> None:
    """Both are 127.0.0.1 (every local process is): the scraper is answered from the
    /metrics reserve, which the flood of /health and history pages never touches."""
    clock, throttle = FakeClock(), Throttle(share_percent=2.0, burst_s=0.02)
    flood: list[int] = []
    server = burning(model, metrics, clock, throttle, 0.005)
    async with server as url, ClientSession() as flooder, ClientSession() as scraper:
        for _ in range(4):  # a minute of scrapes
            for i in range(150):
                path = "/burn" if i % 3 == 0 else "/health"
                flood.append((await flooder.get(url + path)).status)
            assert (await scraper.get(url + "/metrics")).status == 200
            clock.advance(15.0)
    assert flood.count(429) > 300  # the flooder was throttled: the scraper never was


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


async def test_a_wrong_key_is_answered_at_once_and_the_next_attempt_waits(
    aiohttp_client: Client,
    model: HealthModel,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    attempts = KeyAttempts(clock, first_delay_s=2.0, max_delay_s=4.0)
    app = HealthApp(
        model.snapshot, metrics.render, reset=lambda n: True, api_key=KEY, attempts=attempts
    )
    c = await aiohttp_client(app.build())
    guess = {"X-API-Key": "guess-0123456789"}
    assert (await c.post("/targets/trader/reset", headers=guess)).status == 401
    soon = await c.post("/targets/trader/reset", headers={"X-API-Key": KEY})
    assert soon.status == 429  # within the wait: answered at once, the key not even read
    assert soon.headers["Retry-After"] == "2"
    clock.advance(2.0)
    resp = await c.post("/targets/trader/reset", headers=guess)
    assert resp.status == 401
    assert "2 in a row from 127.0.0.1" in (await resp.json())["error"]
    assert (await c.post("/targets/trader/reset", headers=guess)).headers["Retry-After"] == "4"
    clock.advance(4.0)
    assert (await c.post("/targets/trader/reset", headers={"X-API-Key": KEY})).status == 200
    assert "refused POST '/targets/trader/reset' from 127.0.0.1: missing or wrong" in caplog.text
    assert "guess" not in caplog.text


@contextlib.asynccontextmanager
async def serving(model: HealthModel, metrics: Metrics, cap: int) -> AsyncIterator[HttpServer]:
    app = key_app(model, metrics, first=0.0, most=0.0)
    srv = HttpServer(app.build(), HttpSettings(port=0, max_connections=cap))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def server(model: HealthModel, metrics: Metrics) -> AsyncIterator[HttpServer]:
    """A cap of 2, and no reserve (a quarter of it, rounded down)."""
    async with serving(model, metrics, cap=2) as srv:
        yield srv


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


def read_to_the_end(sock: socket.socket) -> bytes:
    """Everything until the server's end of stream (a reset raises ConnectionResetError)."""
    sock.settimeout(5)
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    return got


async def test_a_refused_client_reads_why_and_the_end_never_a_reset(server: HttpServer) -> None:
    get = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    for reader, writer in held:
        writer.write(get)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    # Connected and sent while the server's loop is busy (these calls block it): the request
    # is already in when the refusal is made, so a plain close would answer with a reset.
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(get)
        reply = await asyncio.to_thread(read_to_the_end, sock)
    assert reply == FULL
    for _reader, writer in held:
        writer.close()


async def test_a_refused_client_that_reads_late_still_reads_why(server: HttpServer) -> None:
    """A flooding client's loop is slow: it reads our 503 only after we closed (at once, once
    its request was read and dropped): it reads why, then the end of stream, never a reset."""
    get = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    for reader, writer in held:
        writer.write(get)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(get)
        await until(lambda: server.refusals_ended == 1, 5, "the refusal closed on our side")
        reply = await asyncio.to_thread(read_to_the_end, sock)
    assert reply == FULL
    for _reader, writer in held:
        writer.close()


@pytest.fixture
async def reserved(model: HealthModel, metrics: Metrics) -> AsyncIterator[HttpServer]:
    """A cap of 4: three ordinary slots and one reserved for a short GET."""
    async with serving(model, metrics, cap=4) as srv:
        yield srv


async def fill_the_ordinary_slots(server: HttpServer) -> list[asyncio.StreamWriter]:
    get = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    writers = []
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(get)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writers.append(writer)
    return writers


async def test_a_reserved_connection_that_gives_way_ends_after_its_answer_never_a_503(
    reserved: HttpServer,
) -> None:
    """A scraper's keep-alive connection in the reserve gives way to a newer one. Its request
    is answered, then the connection ends: no 503 glued after the 200 (a keep-alive client
    would read that as the answer to its next request)."""
    held = await fill_the_ordinary_slots(reserved)
    get = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    scraper = socket.create_connection(("127.0.0.1", reserved.port))
    await until(lambda: reserved.connections == 4, 5, "the reserved slot taken")
    # Both while the server's loop is blocked: the scraper's request and a newer connection
    # are in before the server sees either.
    scraper.sendall(get)
    newer = socket.create_connection(("127.0.0.1", reserved.port))
    with scraper, newer:
        reply = await asyncio.to_thread(read_to_the_end, scraper)
    assert reply.startswith(b"HTTP/1.1 200 OK"), reply[:80]
    assert b"HTTP/1.1 503" not in reply
    for writer in held:
        writer.close()


async def test_a_reserved_connection_that_gives_way_before_asking_reads_why_never_a_reset(
    reserved: HttpServer,
) -> None:
    """Evicted before its request came: told why and our end of stream; the request that
    comes after is read and dropped, so the close is clean, never a reset."""
    held = await fill_the_ordinary_slots(reserved)
    get = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    slow = socket.create_connection(("127.0.0.1", reserved.port))
    await until(lambda: reserved.connections == 4, 5, "the reserved slot taken")
    newer = socket.create_connection(("127.0.0.1", reserved.port))
    with slow, newer:
        assert await asyncio.to_thread(select.select, [slow], [], [], 5) != ([], [], [])
        slow.sendall(get)  # after it was told to go: read and dropped, so no reset
        reply = await asyncio.to_thread(read_to_the_end, slow)
    assert reply == FULL
    for writer in held:
        writer.close()
