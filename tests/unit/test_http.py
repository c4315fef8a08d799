"""The HTTP adapter over a real loopback socket, fed by a real health model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient

from supervisor.api.attempts import KeyAttempts
from supervisor.api.metrics import Metrics
from supervisor.api.server import HealthApp
from supervisor.api.transport import HttpServer, HttpSettings
from supervisor.model import ActiveState, PerfDatum, ProbeResult, Status, UnitState
from supervisor.watch.health import HealthModel, ProbeTrack
from tests.clock import FakeClock

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def client(
    aiohttp_client: Client, model: HealthModel, metrics: Metrics
) -> TestClient[Any, Any]:
    return await aiohttp_client(HealthApp(model.snapshot, metrics.render).build())


async def test_health_pass(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    assert resp.content_type == "application/health+json"
    doc = await resp.json(content_type=None)
    assert doc["status"] == "pass"
    entry = doc["checks"]["trader"][0]
    assert entry["componentId"] == "trader"
    assert (entry["activeState"], entry["subState"], entry["mainPid"], entry["nRestarts"]) == (
        "active",
        "running",
        42,
        1,
    )
    assert entry["since"].endswith("Z")


async def test_critical_failure_answers_503(
    client: TestClient[Any, Any], model: HealthModel
) -> None:
    model.apply_unit(
        "trader",
        UnitState(
            unit="trader.service",
            active_state=ActiveState.FAILED,
            sub_state="failed",
            result="signal",
        ),
    )
    resp = await client.get("/health")
    assert resp.status == 503
    doc = await resp.json(content_type=None)
    assert doc["status"] == "fail"
    assert doc["checks"]["trader"][0]["status"] == "fail"
    one = await client.get("/health/trader")
    assert one.status == 503
    assert (await one.json(content_type=None))["output"] == "failed (failed), result signal"


async def test_one_target_and_unknown_target(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/health/dashboard")
    assert resp.status == 200
    assert list((await resp.json(content_type=None))["checks"]) == ["dashboard"]
    missing = await client.get("/health/sshd")
    assert missing.status == 404
    body = await missing.json()
    assert body["error"] == "no target named 'sshd'"
    assert body["targets"] == ["trader", "dashboard"]


async def test_unknown_shows_as_warn_with_reason(
    client: TestClient[Any, Any], model: HealthModel
) -> None:
    model.set_unknown("bus connection lost")
    doc = await (await client.get("/health")).json(content_type=None)
    entry = doc["checks"]["trader"][0]
    assert (doc["status"], entry["status"], entry["state"]) == ("warn", "warn", "unknown")
    assert entry["output"] == "unknown: bus connection lost"


async def test_bad_path_and_method(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.json())["error"] == "Not Found"
    post = await client.post("/health", data=b"x")
    assert post.status == 405
    assert "GET" in post.headers["Allow"]
    assert (await post.json())["error"] == "Method Not Allowed"


async def test_large_body_rejected(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/health", data=b"x" * 100_000)
    assert resp.status in (405, 413)


async def test_metrics(client: TestClient[Any, Any], model: HealthModel) -> None:
    model.apply_unit(
        "dashboard",
        UnitState(unit="dashboard.service", active_state=ActiveState.INACTIVE, sub_state="dead"),
    )
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    assert 'supervisor_target_status{status="fail",target="dashboard"} 1.0' in text
    assert 'supervisor_target_up{target="trader"} 1.0' in text
    assert 'supervisor_unit_active_state{state="inactive",target="dashboard"} 1.0' in text
    assert 'supervisor_unit_restarts_total{target="trader"} 1.0' in text
    assert "supervisor_resident_memory_bytes 3e+07" in text
    assert "supervisor_cpu_seconds_total 0.5" in text
    assert "supervisor_uptime_seconds 12.0" in text
    assert 'supervisor_status{status="warn"} 1.0' in text


async def test_warn_and_perfdata_in_health_and_metrics(
    client: TestClient[Any, Any], model: HealthModel
) -> None:
    model.add_probe("dashboard", "disk", "exec", ProbeTrack())
    perf: tuple[PerfDatum, ...] = (PerfDatum("/", 11334 * 1024.0**2, "bytes"),)
    perf += (PerfDatum("time", 0.015, "seconds"),)
    perf += (PerfDatum("used", 0.85, "ratio"), PerfDatum("rows", 42.0))
    warned = "DISK WARNING - free space: / 3326 MiB (22% inode=91%);"
    model.apply_probe(
        ProbeResult(
            target="dashboard",
            probe="disk",
            kind="exec",
            status=Status.WARN,
            output=warned,
            duration_s=0.02,
            perfdata=perf,
        )
    )
    resp = await client.get("/health/dashboard")
    assert resp.status == 200  # warn answers 200
    doc = await resp.json()
    assert (doc["status"], doc["output"]) == ("warn", warned)
    probe = doc["checks"]["dashboard"][0]["probes"][0]
    assert probe["perfdata"][0] == {"label": "/", "value": 11334 * 1024**2, "unit": "bytes"}
    text = await (await client.get("/metrics")).text()
    labels = 'label="{}",probe="disk",target="dashboard"'
    assert f"supervisor_probe_perfdata_bytes{{{labels.format('/')}}} 1.1884560384e+10" in text
    assert f"supervisor_probe_perfdata_seconds{{{labels.format('time')}}} 0.015" in text
    assert f"supervisor_probe_perfdata_ratio{{{labels.format('used')}}} 0.85" in text
    assert f"supervisor_probe_perfdata{{{labels.format('rows')}}} 42.0" in text
    assert 'supervisor_probe_status{probe="disk",status="warn",target="dashboard"} 1.0' in text
    assert 'supervisor_target_status{status="warn",target="dashboard"} 1.0' in text


async def test_server_binds_loopback_and_reports_port(model: HealthModel, metrics: Metrics) -> None:
    server = HttpServer(
        HealthApp(model.snapshot, metrics.render).build(), HttpSettings(host="127.0.0.1", port=0)
    )
    await server.start()
    try:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/health"
        async with ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
        assert model.snapshot().status is Status.PASS
    finally:
        await server.stop()


async def test_reset_is_off_without_a_key(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/targets/trader/reset")
    assert resp.status == 403
    assert "set http.api_key" in (await resp.json())["error"]


async def test_reset_needs_the_right_key(
    aiohttp_client: Client, model: HealthModel, metrics: Metrics
) -> None:
    done: list[str] = []

    def reset(name: str) -> bool:
        done.append(name)
        return name in ("trader", "dashboard")

    attempts = KeyAttempts(FakeClock(), first_delay_s=0.0, max_delay_s=0.0)  # no waits
    app = HealthApp(
        model.snapshot, metrics.render, reset=reset, api_key="s3cret-key", attempts=attempts
    )
    c = await aiohttp_client(app.build())
    assert (await c.post("/targets/trader/reset")).status == 401
    wrong = await c.post("/targets/trader/reset", headers={"X-API-Key": "nope"})
    assert wrong.status == 401
    assert "s3cret" not in await wrong.text()
    ok = await c.post("/targets/trader/reset", headers={"X-API-Key": "s3cret-key"})
    assert ok.status == 200
    assert await ok.json() == {"target": "trader", "reset": True}
    missing = await c.post("/targets/sshd/reset", headers={"X-API-Key": "s3cret-key"})
    assert missing.status == 404
    assert done == ["trader", "sshd"]
