"""dashboard: answers ``GET /health`` with ``{"status": "ok", "pid": ...}`` on 127.0.0.1:<port>.

When the port is taken (say, by an orphaned process) it exits 1 with a message saying so,
which makes its unit fail to start.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devtools.demo.faults import FaultState, exit_if_crash_on_start


class _Server(ThreadingHTTPServer):
    # Request threads must not keep a crashing or stopping process alive.
    daemon_threads = True

    def __init__(self, address: tuple[str, int], faults: FaultState) -> None:
        self.faults = faults
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.server.faults.hung:
            # Hang: the connection was accepted (the port is open) but no answer ever comes.
            threading.Event().wait()
        if self.path != "/health":
            self.send_error(404)
            return
        body = json.dumps({"status": "ok", "pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes hit /health often: keep them out of the log."""


def run(port: int, state_dir: Path, host: str = "127.0.0.1") -> int:
    """Serve until killed."""
    exit_if_crash_on_start("dashboard", state_dir)
    faults = FaultState("dashboard")
    faults.install()
    try:
        server = _Server((host, port), faults)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"dashboard: cannot listen on {host}:{port}: the port is already in use "
            "(a stray process may hold it); exiting 1",
            file=sys.stderr,
            flush=True,
        )
        return 1
    with server:
        print(f"dashboard: pid {os.getpid()}, http://{host}:{port}/health", flush=True)
        server.serve_forever(poll_interval=0.5)
    return 0
