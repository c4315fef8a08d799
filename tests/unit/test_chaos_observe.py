"""The chaos run's /metrics poller against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
