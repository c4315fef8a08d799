"""What a hostile local process can do to the HTTP surface and the log, on real loopback
sockets (raw ones for malformed requests): never the key in the log, never a forged or a
flooded log, never /health refused for connections, event-stream slots freed at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from supervisor.api.metrics import Metrics
from supervisor.api.render import public_event
from supervisor.api.server import HealthApp
from supervisor.api.stream import EventStream
from supervisor.api.transport import HttpServer, HttpSettings
from supervisor.model import ActiveState, UnitState
from supervisor.watch.health import HealthModel
from tests.polling import until
from tests.unit.test_http_guards import KEY, key_app

HOST = b"Host: 127.0.0.1\r\n"


async def serve(app: HealthApp, cap: int = 64) -> HttpServer:
    srv = HttpServer(app.build(), HttpSettings(port=0, max_connections=cap))
    await srv.start()
    return srv


@pytest.fixture
async def server(model: HealthModel, metrics: Metrics) -> AsyncIterator[HttpServer]:
    srv = await serve(key_app(model, metrics, first=0.25, most=4.0))  # the default waits
    yield srv
    await srv.stop()


async def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes; the reply's head and body, until the server closes or 64 KB."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await reader.read(65536)
    except OSError:
        return b""
    finally:
        writer.close()


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]


@pytest.mark.parametrize(
    "key_line",
    [
        b"X-API-Key: " + KEY.encode() + b"\r\r\n",  # a key file saved with Windows line ends
        b"X-API-Key: " + KEY.encode() + b"\x01\r\n",  # a control byte
        b"X-API-Key: " + KEY.encode() + b"A" * 9000 + b"\r\n",  # over 8 KB
    ],
)
async def test_a_malformed_header_line_never_puts_the_key_in_the_log(
    server: HttpServer, caplog: pytest.LogCaptureFixture, key_line: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    request = b"POST /targets/trader/reset HTTP/1.1\r\n" + HOST + key_line
    reply = await exchange(server.port, request + b"Content-Length: 0\r\n\r\n")
    assert reply.split(b"\r\n")[0].endswith(b" 400 Bad Request")
    assert KEY not in caplog.text
    assert KEY[:8] not in caplog.text
    assert "refused a malformed request from 127.0.0.1" in caplog.text


async def test_a_newline_in_a_path_cannot_start_a_log_line(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    forged = b"/a%0A2026-12-07%2001:44:01,000%20ERROR%20supervisor.recovery:%20FORGED"
    await exchange(server.port, b"GET " + forged + b" HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    path = b"/targets/x%0D%0AFORGED/reset"
    await exchange(server.port, b"POST " + path + b" HTTP/1.1\r\n" + HOST + b"\r\n")
    said = lines(caplog)
    assert any("Host 'evil.example' is not served" in line for line in said)
    assert any("refused POST '/targets/x\\r\\nFORGED/reset'" in line for line in said)
    assert not [line for line in said if "\n" in line or "\r" in line]


async def test_two_thousand_malformed_requests_add_one_line(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for i in range(2000):
        junk = b"GET /health HTTP/1.1\r\n" + HOST + b"X-Junk-%d: a\x01b\r\n\r\n" % i
        await exchange(server.port, junk)
    said = [r for r in caplog.records if r.name.startswith(("supervisor", "aiohttp"))]
    print(f"\n2,000 malformed requests: {len(said)} log lines")
    assert len(said) == 1  # the first, at once; the rest counted into the next minute's line
    assert "refused a malformed request from 127.0.0.1: BadHttpMessage" in caplog.text


async def held(port: int, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that sent `request` (if any) and is then kept open, never closed by us."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if request:
        writer.write(request)
    return reader, writer


async def test_health_answers_from_its_real_status_with_every_slot_taken(
    server: HttpServer, model: HealthModel
) -> None:
    port = server.port
    wrong = b"POST /targets/trader/reset HTTP/1.1\r\n" + HOST + b"X-API-Key: nope\r\n\r\n"
    sockets = [await held(port, wrong) for _ in range(64)]
    sockets += [await held(port, b"") for _ in range(64)]
    get = b"GET /health HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"
    loop = asyncio.get_running_loop()
    slowest = 0.0
    try:
        for i in range(24):
            if i == 12:  # the trader stops: /health must now say 503 for that reason
                stopped = UnitState("trader.service", active_state=ActiveState.FAILED)
                model.apply_unit("trader", stopped)
            started = loop.time()
            reply = await exchange(port, get)
            slowest = max(slowest, loop.time() - started)
            assert b"too many open connections" not in reply
            assert reply.startswith(b"HTTP/1.1 200" if i < 12 else b"HTTP/1.1 503")
            assert b'"status"' in reply
    finally:
        for _reader, writer in sockets:
            writer.close()
    print(f"\n/health with 128 sockets held: slowest answer {slowest * 1000:.0f} ms")
    assert slowest < 1.0  # a deadline that tolerates a loaded box; the figure is printed


async def test_a_closed_event_stream_frees_its_slot_at_once(
    model: HealthModel, metrics: Metrics
) -> None:
    stream = EventStream(max_clients=2)
    srv = await serve(HealthApp(model.snapshot, metrics.render, routes=[stream]))
    get = b"GET /events/stream HTTP/1.1\r\n" + HOST + b"\r\n"
    try:
        clients = [await held(srv.port, get) for _ in range(2)]
        for reader, _writer in clients:
            assert b": connected" in await reader.readuntil(b": connected\n\n")
        assert stream.clients == 2
        assert (await exchange(srv.port, get)).startswith(b"HTTP/1.1 503")  # full
        clients[0][1].close()
        took = await until(lambda: stream.clients < 2, 1.0, "the closed client's slot")
        print(f"\nslot freed {took * 1000:.0f} ms after the client closed")
        reader, writer = await held(srv.port, get)
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        writer.close()
        clients[1][1].close()
    finally:
        stream.close()
        await srv.stop()


async def test_no_version_banner_and_nosniff_on_every_answer(server: HttpServer) -> None:
    for request in (
        b"GET /health HTTP/1.1\r\n" + HOST + b"\r\n",
        b"GET /nowhere HTTP/1.1\r\n" + HOST + b"\r\n",
        b"POST /targets/trader/reset HTTP/1.1\r\n" + HOST + b"\r\n",
        b"GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        b"GET /health HTTP/1.1\r\n" + HOST + b"X-Junk: a\x01b\r\n\r\n",  # aiohttp's own 400
    ):
        head = (await exchange(server.port, request)).split(b"\r\n\r\n")[0].lower()
        assert b"\r\nx-content-type-options: nosniff" in head, head
        assert b"aiohttp" not in head and b"python" not in head, head


def test_chat_events_are_shown_without_who_or_where() -> None:
    doc = {
        "id": 7,
        "kind": "chat",
        "target": None,
        "summary": "/status from user 123456789 (alice) in chat -100200300",
        "data": {"command": "status", "chat": -100200300, "sender": "alice"},
    }
    shown = public_event(doc)
    assert shown["summary"] == "/status from an allowed Telegram user"
    assert shown["data"] == {"command": "status"}
    assert "alice" not in repr(shown) and "123456789" not in repr(shown)
    other = {"id": 8, "kind": "restart", "summary": "restarted", "data": {}}
    assert public_event(other) is other
