"""The chaos run's /metrics poller against a real HTTP server on 127.0.0.1, and how it reads
systemd's view of a unit and the host's load itself."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from devtools.chaos.ground import parse_unit
from devtools.chaos.host import cpu_percent, memory_percent, parse_cpu
from devtools.chaos.observe import Feed, MetricsPoller
from devtools.chaos.record import Record

METRICS = b"supervisor_alert_outbox_messages 6.0\nsupervisor_alert_incidents_open 2.0\n"


@contextmanager
def server(status: list[int]) -> Iterator[int]:
    """Answers /metrics with METRICS, or with `status[0]` when it is not 200."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = status[0]
            body = METRICS if code == 200 else b"throttled\n"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_refused_scrape_makes_the_outbox_unknown_not_stale() -> None:
    status = [200]
    feed = Feed(Record(seed=1))
    with server(status) as port:
        poller = MetricsPoller(feed, port, lambda: 1)
        poller.poll()
        assert (feed.outbox, feed.incidents) == (6, 2)
        status[0] = 429  # the supervisor throttles HTTP: the last figures are not known now
        poller.poll()
        assert (feed.outbox, feed.incidents) == (None, None)


def test_systemds_view_of_a_unit_is_read_with_when_its_main_process_started() -> None:
    block = (
        "Id=trader.service\nMainPID=0\nExecMainPID=4242\n"
        "ExecMainStartTimestampMonotonic=12500000\nNRestarts=0\n"
        "ActiveState=failed\nSubState=failed\n"
    )
    unit = parse_unit(block, 1000.0, 500.0)
    assert unit is not None
    assert (unit.target, unit.main_pid, unit.exec_pid) == ("trader", 0, 4242)
    assert (unit.exec_started, unit.n_restarts, unit.state) == (512.5, 0, "failed/failed")
    never = parse_unit("Id=x.service\nExecMainPID=0\nExecMainStartTimestampMonotonic=0", 1, 5)
    assert never is not None and never.exec_started == 0.0
    assert parse_unit("", 1.0, 0.0) is None


def test_the_hosts_cpu_and_memory_are_read_from_proc_by_the_run() -> None:
    before = parse_cpu("cpu  100 0 100 700 100 0 0 0 50 0\ncpu0 1 2 3\n")
    after = parse_cpu("cpu  190 0 190 710 110 0 0 0 90 0\n")  # guest is inside user already
    assert (before.busy, before.total) == (200, 1000)
    assert cpu_percent(before, after) == 90.0  # 180 busy ticks of 200
    assert cpu_percent(after, after) == 0.0
    meminfo = "MemTotal:       2000000 kB\nMemFree:  100 kB\nMemAvailable:    300000 kB\n"
    assert memory_percent(meminfo) == 85.0
