"""/events, /history, /events/stream and the page, over a real loopback socket, on a real
store in a temporary directory."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from supervisor.api.history import HistoryRoutes
from supervisor.api.page import CSP, StatusPage
from supervisor.api.server import HealthApp, Routes
from supervisor.api.stream import QUEUE_SIZE, EventStream
from supervisor.history.events import Kind
from supervisor.history.recorder import Recorder
from supervisor.history.store import HistoryStore
from supervisor.model import ActiveState, ProbeResult, Status, SystemClock, UnitState
from supervisor.watch.health import HealthModel, TargetSpec
from supervisor.watch.track import ProbeTrack
from tests.polling import until

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


class Parts:
    def __init__(self, tmp: Path) -> None:
        clock = SystemClock()
        self.model = HealthModel([TargetSpec("trader", "trader.service", critical=True)], clock)
        self.store = HistoryStore(tmp / "history.sqlite3")
        self.recorder = Recorder(self.store, clock, ["trader"])
        self.stream = EventStream(max_clients=2)
        self.recorder.subscribe(lambda e: self.stream.publish(e.id, e.document()))

    def about(self) -> dict[str, Any]:
        return {"version": "test", "uptimeS": 1.0}

    def probe(self, status: Status) -> None:
        result = ProbeResult("trader", "http", "http", status, f"http: {status.value}", 0.01)
        self.model.apply_probe(result)
        self.recorder.observe(self.model.snapshot())

    def unit(self, state: ActiveState, sub: str, pid: int) -> None:
        unit = UnitState("trader.service", active_state=state, sub_state=sub, main_pid=pid)
        self.model.apply_unit("trader", unit)
        self.recorder.unit("trader", unit)
        self.recorder.observe(self.model.snapshot())


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    p = Parts(tmp_path)
    p.recorder.start()
    yield p
    p.stream.close()
    await asyncio.to_thread(p.recorder.close)


@pytest.fixture
async def client(aiohttp_client: Client, parts: Parts) -> TestClient[Any, Any]:
    routes: list[Routes] = [HistoryRoutes(parts.recorder, parts.about), parts.stream, StatusPage()]
    app = HealthApp(parts.model.snapshot, lambda: b"", routes=routes)
    return await aiohttp_client(app.build())


async def _written(parts: Parts, n: int) -> None:
    await until(lambda: parts.store.written >= n, 5, f"{n} events written")


async def test_events_newest_first_with_a_next_page(
    client: TestClient[Any, Any], parts: Parts
) -> None:
    parts.unit(ActiveState.ACTIVE, "running", 41)
    parts.unit(ActiveState.FAILED, "failed", 0)
    parts.recorder.record(Kind.RECOVERY, "restart trader (attempt 1/3)", "trader", attempt=1)
    await _written(parts, 5)
    resp = await client.get("/events", params={"limit": "2"})
    page = await resp.json()
    assert resp.status == 200 and page["source"] == "store"
    assert [e["kind"] for e in page["events"]] == ["recovery", "status"]
    assert page["events"][1]["data"]["to"] == "fail"
    rest = await (await client.get(page["next"])).json()
    assert [e["kind"] for e in rest["events"]] == ["unit", "status"]
    only = await (await client.get("/events?kind=unit&since=1h")).json()
    assert [e["summary"] for e in only["events"]] == [
        "trader: unit active/running -> failed/failed, pid 41 -> 0",
        "trader: unit seen -> active/running",
    ]


async def test_bad_queries_say_what_is_wrong(client: TestClient[Any, Any]) -> None:
    for query, words in (
        ("kind=nonsense", "kind must be one of"),
        ("since=yesterday", "since: not a time"),
        ("limit=0", "limit must be 1..1000"),
        ("limit=abc", "limit must be a whole number"),
    ):
        resp = await client.get(f"/events?{query}")
        assert resp.status == 400
        assert words in (await resp.json())["error"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("since=nan", "since"),
        ("since=inf", "since"),
        ("since=-inf", "since"),
        ("until=1e18", "until"),
        ("since=-5", "since"),
        ("since=99999999999999999999w", "since"),
        ("until=99999999999999999999d", "until"),
        ("before=99999999999999999999", "before"),
        ("before=-99999999999999999999", "before"),
        ("limit=99999999999999999999", "limit"),
    ],
)
async def test_non_finite_or_out_of_range_numbers_are_a_400_naming_them(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, query: str, name: str
) -> None:
    resp = await client.get(f"/events?{query}")
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(name)
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_history_of_a_target_and_of_all(client: TestClient[Any, Any], parts: Parts) -> None:
    parts.unit(ActiveState.ACTIVE, "running", 41)
    resp = await client.get("/history/trader")
    doc = await resp.json()
    assert resp.status == 200
    assert doc["uptime"]["24h"] == 100.0 and len(doc["hours"]) == 24
    assert (await client.get("/history/nobody")).status == 404
    summary = await (await client.get("/history")).json()
    assert summary["supervisor"]["version"] == "test"
    assert summary["targets"]["trader"]["uptime24h"] == 100.0


async def test_the_page_is_static_with_a_strict_policy(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/")
    html = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert resp.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/page.js" defer>']
    script = await (await client.get("/static/page.js")).text()
    assert "textContent" in script and "innerHTML" not in script
    assert (await client.get("/static/page.css")).status == 200


async def _frame(resp: ClientResponse) -> dict[str, Any]:
    """The next `data:` line of a stream."""
    async with asyncio.timeout(5):
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("data: "):
                doc: dict[str, Any] = json.loads(line[6:])
                return doc


async def test_the_stream_sends_new_events_at_once(
    client: TestClient[Any, Any], parts: Parts
) -> None:
    resp = await client.get("/events/stream")
    assert resp.headers["Content-Type"] == "text/event-stream"
    await until(lambda: parts.stream.clients == 1, 5, "1 stream clients")
    parts.recorder.record(Kind.BREAKER, "breaker open: host CPU 95 %")
    assert (await _frame(resp))["summary"] == "breaker open: host CPU 95 %"
    resp.close()


async def test_a_client_that_falls_behind_is_dropped(
    client: TestClient[Any, Any], parts: Parts
) -> None:
    resp = await client.get("/events/stream")
    await until(lambda: parts.stream.clients == 1, 5, "1 stream clients")
    for i in range(QUEUE_SIZE + 1):  # without yielding: its queue fills before it can drain
        parts.recorder.record(Kind.ALERT, f"alert {i}")
    assert parts.stream.dropped == 1 and parts.stream.clients == 0
    async with asyncio.timeout(5):
        rest = await resp.content.read()  # its stream ends
    assert rest.count(b"data: ") < QUEUE_SIZE + 1


async def test_clients_are_bounded(client: TestClient[Any, Any], parts: Parts) -> None:
    first = await client.get("/events/stream")
    second = await client.get("/events/stream")
    await until(lambda: parts.stream.clients == 2, 5, "2 stream clients")
    third = await client.get("/events/stream")
    assert third.status == 503 and third.headers["Retry-After"] == "10"
    first.close()
    second.close()


async def test_a_hangs_evidence_rides_on_the_fail_event_and_its_incident(
    client: TestClient[Any, Any], parts: Parts
) -> None:
    parts.model.add_probe("trader", "http", "http", ProbeTrack(failure_threshold=1))
    parts.unit(ActiveState.ACTIVE, "running", 41)
    cause = {"kind": "hang", "words": "hung: pid 41 stopped (T), no CPU time moved in 0.6 s"}
    log = {"lines": ["process: pid 41 stopped (T)"], "source": "probe and /proc"}
    parts.probe(Status.PASS)
    parts.recorder.failure_cause("trader", cause, log)
    parts.probe(Status.FAIL)  # its next fail: the cause is its own
    parts.probe(Status.PASS)
    parts.probe(Status.FAIL)  # a later fail, nothing told: no cause
    await _written(parts, 5)
    page = await (await client.get("/events?target=trader&kind=status")).json()
    fails = [e["data"] for e in page["events"] if e["data"]["to"] == "fail"]
    assert [f.get("cause") for f in fails] == [None, cause]  # newest first
    assert fails[1]["log"] == log
    doc = await (await client.get("/history/trader")).json()
    older = doc["incidents"][-1]
    assert (older["cause"], older["log"]) == (cause["words"], log["lines"])


async def test_a_unit_move_after_a_hang_leaves_the_next_fail_its_own_story(
    client: TestClient[Any, Any], parts: Parts
) -> None:
    """A slow probe told a hang, then the unit died: that fail is the death's, not the hang's."""
    parts.unit(ActiveState.ACTIVE, "running", 41)
    cause = {"kind": "hang", "words": "hung: pid 41 running (R), CPU time moved 1.9 s in 2.0 s"}
    parts.recorder.failure_cause("trader", cause, {"lines": [], "source": "probe and /proc"})
    parts.unit(ActiveState.FAILED, "failed", 0)
    await _written(parts, 3)
    page = await (await client.get("/events?target=trader&kind=status")).json()
    (fail,) = [e["data"] for e in page["events"] if e["data"]["to"] == "fail"]
    assert "cause" not in fail
