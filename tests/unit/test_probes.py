"""Each probe kind against real loopback sockets and real files."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from devtools.net import free_port
from supervisor.config import HeartbeatProbe, HttpProbe, ResourcesProbe, TcpProbe
from supervisor.config.schema import probes as schema
from supervisor.config.schema import to_plain
from supervisor.model import Status, UnitResources
from supervisor.probing import probes
from supervisor.runtime import tls
from tests.clock import FakeClock


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A real HTTP server with a healthy, a failing, a redirecting and a hanging route."""
    release = asyncio.Event()

    async def hang(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    def answer(body: dict[str, Any], status: int = 200) -> Any:
        async def handler(_: web.Request) -> web.Response:
            return web.json_response(body, status=status)

        return handler

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    app = web.Application()
    app.router.add_get("/ok", answer({"status": "ok"}))
    app.router.add_get("/bad", answer({"status": "degraded"}, 500))
    app.router.add_get("/degraded", answer({"status": "degraded"}))
    app.router.add_get("/moved", moved)
    app.router.add_get("/hang", hang)
    feed = {"connected": True, "last_message_at": "2027-01-15T07:54:48Z"}  # 312 s before NOW
    app.router.add_get("/feed", answer({"status": "ok", "feed": feed, "balance": 80}))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", release
    release.set()
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[Any]:
    get = probes.session_factory()
    yield get
    await get().close()


def http(url: str, **kw: Any) -> HttpProbe:
    """An http probe as the file gives it (`json` conditions as tables), checked."""
    probe = to_plain(schema.HttpProbe(type="http", url=url, **kw))
    assert isinstance(probe, HttpProbe)
    return probe


async def run(check: probes.Check, limit: float = 2.0) -> Any:
    return await probes.run("t", check.kind, check, limit, FakeClock())


async def test_http_ok_and_redirect_pass(server: tuple[str, Any], session: Any) -> None:
    base, _ = server
    assert (await run(probes.HttpCheck(http(f"{base}/ok"), session, tls=tls.client))).ok
    moved = await run(probes.HttpCheck(http(f"{base}/moved"), session, tls=tls.client))
    assert moved.ok
    assert moved.output == "http: status 302"


async def test_http_5xx_fails_with_status(server: tuple[str, Any], session: Any) -> None:
    base, _ = server
    r = await run(probes.HttpCheck(http(f"{base}/bad"), session, tls=tls.client))
    assert not r.ok
    assert r.output == "http: status 500"


async def test_http_expect_json(server: tuple[str, Any], session: Any) -> None:
    base, _ = server
    good = http(f"{base}/ok", expect_json={"status": "ok"})
    assert (await run(probes.HttpCheck(good, session, tls=tls.client))).ok
    bad = http(f"{base}/degraded", expect_json={"status": "ok"})
    r = await run(probes.HttpCheck(bad, session, tls=tls.client))
    assert r.output == "http: body field 'status' is 'degraded', expected 'ok'"


async def test_http_json_conditions_say_which_and_why(
    server: tuple[str, Any], session: Any
) -> None:
    base, _ = server
    clock = FakeClock()  # 1_800_000_000: 2027-01-15T08:00:00Z
    conds = [
        {"path": "feed.connected", "equals": True},
        {"path": "feed.last_message_at", "max_age_s": 60},
        {"path": "balance", "min": 100, "warn_below": 500},
    ]
    spec = http(f"{base}/feed", expect_json={"status": "ok"}, json=conds)
    r = await probes.HttpCheck(spec, session, clock, tls=tls.client).check()
    assert r.status is Status.FAIL
    assert r.output == ("http: feed.last_message_at: 312 s old (max 60 s); balance: 80 < 100")
    warn_only = http(f"{base}/feed", json=[{"path": "balance", "warn_below": 500}])
    r = await probes.HttpCheck(warn_only, session, clock, tls=tls.client).check()
    assert (r.status, r.output) == (Status.WARN, "http: balance: 80 < 500 (warn)")
    fresh = http(f"{base}/feed", json=[{"path": "feed.last_message_at", "max_age_s": 600}])
    r = await probes.HttpCheck(fresh, session, clock, tls=tls.client).check()
    assert (r.status, r.output) == (Status.PASS, "http: status ok, body as expected (1 conditions)")


async def test_http_hang_times_out_hard(server: tuple[str, Any], session: Any) -> None:
    base, _ = server
    loop = asyncio.get_running_loop()
    started = loop.time()
    r = await run(probes.HttpCheck(http(f"{base}/hang"), session, tls=tls.client), limit=0.3)
    assert not r.ok
    assert r.output == "http: timeout after 0.3 s"
    assert loop.time() - started < 2.0


async def test_http_refused(session: Any) -> None:
    r = await run(
        probes.HttpCheck(http(f"http://127.0.0.1:{free_port()}/"), session, tls=tls.client)
    )
    assert not r.ok
    assert "cannot connect" in r.output


@pytest.fixture
def listener() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield int(s.getsockname()[1])
    s.close()


async def test_tcp(listener: int) -> None:
    ok = await run(probes.TcpCheck(TcpProbe(type="tcp", port=listener)))
    assert ok.ok
    refused = await run(probes.TcpCheck(TcpProbe(type="tcp", port=free_port())))
    assert not refused.ok
    assert "refused" in refused.output.lower()


async def test_heartbeat_age(tmp_path: Path) -> None:
    path = tmp_path / "hb"
    path.write_text("x")
    clock = FakeClock(start=os.stat(path).st_mtime)
    check = probes.HeartbeatCheck(HeartbeatProbe(type="heartbeat", path=path, max_age_s=15), clock)
    assert (await check.check()).ok
    clock.advance(47)
    stale = await check.check()
    assert not stale.ok
    assert stale.output == "heartbeat: 47 s old (max 15 s)"
    assert (stale.value, stale.unit) == (47.0, "s")


async def test_heartbeat_missing(tmp_path: Path) -> None:
    check = probes.HeartbeatCheck(
        HeartbeatProbe(type="heartbeat", path=tmp_path / "none", max_age_s=5), FakeClock()
    )
    r = await check.check()
    assert not r.ok
    assert "does not exist" in r.output


class FakeTree:
    """A process tree whose CPU the test sets."""

    def __init__(self) -> None:
        self.cpu = 0.0

    def pids(self, control_group: str) -> list[int]:
        return [1234] if control_group == "/app.slice/t.service" else []

    def cpu_seconds(self, pids: list[int]) -> float:
        return self.cpu if pids else 0.0

    def rss_bytes(self, pids: list[int]) -> int:
        return 50 * probes.MIB if pids else 0


async def test_resources_from_cgroup_memory_and_proc_cpu() -> None:
    clock, tree = FakeClock(), FakeTree()
    unit = UnitResources(
        memory_bytes=612 * probes.MIB, cpu_nsec=None, control_group="/app.slice/t.service"
    )

    async def read() -> UnitResources:
        return unit

    spec = ResourcesProbe(type="resources", memory_max_mb=500, cpu_max_percent=80)
    check = probes.ResourcesCheck(spec, read, tree, clock)
    r = await check.check()
    assert not r.ok
    assert r.output == "resources: 612 MB > 500 MB"
    assert (r.value, r.unit, r.source) == (612.0, "MB", "memory cgroup, cpu proc")

    unit = UnitResources(memory_bytes=None, cpu_nsec=None, control_group="/app.slice/t.service")
    clock.advance(5)
    tree.cpu = 4.5  # 4.5 CPU seconds in 5 s: 90 % of one core
    r = await check.check()
    assert r.output == "resources: CPU 90 % > 80 %"
    assert r.source == "memory proc, cpu proc"
    assert ("memory_bytes", 50.0 * probes.MIB) in r.samples

    clock.advance(5)
    r = await check.check()
    assert r.ok
    assert r.output == "resources: 50 MB, CPU 0.0 %"


async def test_a_crashing_check_becomes_a_failed_result() -> None:
    class Broken:
        kind = "http"

        async def check(self) -> probes.Outcome:
            raise aiohttp.InvalidURL("nope")

    r = await run(Broken())
    assert not r.ok
    assert r.output.startswith("http: InvalidURL")
