"""dashboard: answers ``GET /health`` with ``{"status": "ok", "pid": ...}`` on 127.0.0.1:<port>.

``GET /feed`` reports its market feed as a trading dashboard would: ``{"feed": {"connected":
true, "last_message_at": "<ISO-8601 UTC>", "messages": N}, "balance": 2500.0, "pid": ...}``.
A message "arrives" every second; the ``stall-feed`` fault stops them while the feed still
says connected (the trading documents' warning: a WebSocket can look connected and be
silent).

Its state sits behind a lock that request handlers, the feed thread and the accepting
thread's housekeeping (after every poll of the listening socket) all take, as a real app's
shared state would: that is what the ``deadlock`` and ``slow`` faults play with (see
`devtools.demo.faults`; the accepting thread is the main thread, which runs the signal
handlers, so the deadlock forms the moment its signal arrives).

When the port is taken (say, by an orphaned process) it exits 1 with a message saying so,
which makes its unit fail to start.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devtools.demo.faults import FaultState, exit_if_crash_on_start

BALANCE = 2500.0  # the demo account's balance (USDT)
MESSAGE_EVERY_S = 1.0
SLOW_EVERY_S = 6.0  # the slow fault: a pause this often...
SLOW_PAUSE_S = 1.5  # ...this long (shorter than the probes' default 2 s timeout)


class Locks:
    """The app's state lock and the feed's own lock, and the meeting point of the deadlock."""

    def __init__(self) -> None:
        self.state = threading.Lock()
        self.feed = threading.Lock()
        # Both sides of the deadlock hold their first lock before reaching for the second,
        # so the fault deadlocks every time instead of once in a while.
        self.collide = threading.Barrier(2)

    def inverted(self, first: threading.Lock, second: threading.Lock) -> None:
        """Take `first`, meet the other side, then wait for `second` (held by it): forever."""
        with first:
            self.collide.wait()
            with second:
                pass

    def pause_forever(self) -> None:
        """The slow fault: hold the state lock SLOW_PAUSE_S every SLOW_EVERY_S (a thread)."""
        while True:
            with self.state:
                time.sleep(SLOW_PAUSE_S)  # stop-the-world, no CPU: the hardest slow case
            time.sleep(SLOW_EVERY_S - SLOW_PAUSE_S)


class Feed:
    """A market feed that receives a message every second unless the fault stalls it."""

    def __init__(self, faults: FaultState, locks: Locks) -> None:
        self._faults = faults
        self._locks = locks
        self.last_message_at = time.time()
        self.messages = 0

    def receive_forever(self) -> None:
        """Count a message per second while not stalled (runs in a daemon thread)."""
        while True:
            if self._faults.deadlocked:
                self._locks.inverted(self._locks.feed, self._locks.state)
            if not (self._faults.feed_stalled or self._faults.hung):
                with self._locks.state:
                    self.last_message_at = time.time()
                    self.messages += 1
            # The pace of the pretend exchange; a fault wakes it, so resume-feed is at once.
            self._faults.wake.wait(MESSAGE_EVERY_S)
            self._faults.wake.clear()

    def document(self) -> dict[str, Any]:
        """What GET /feed answers."""
        at = self.last_message_at
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
        feed = {"connected": True, "last_message_at": stamp, "messages": self.messages}
        return {"feed": feed, "balance": BALANCE, "pid": os.getpid()}


class _Server(ThreadingHTTPServer):
    # Request threads must not keep a crashing or stopping process alive.
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], faults: FaultState, feed: Feed, locks: Locks
    ) -> None:
        self.faults = faults
        self.feed = feed
        self.locks = locks
        self.served = 0
        self.published = 0
        self._pausing = False
        super().__init__(address, _Handler)

    def service_actions(self) -> None:
        """Housekeeping in the accepting thread after every poll: it takes the state lock."""
        if self.faults.slow and not self._pausing:
            self._pausing = True
            threading.Thread(target=self.locks.pause_forever, name="slow", daemon=True).start()
        with self.locks.state:
            self.published = self.served  # what a stats page would show


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.server.faults.hung:
            # Hang: the connection was accepted (the port is open) but no answer ever comes.
            threading.Event().wait()
        while self.server.faults.spinning:
            pass  # spin: busy on the CPU, never answering
        with self.server.locks.state:
            self.server.served += 1
            if self.path == "/health":
                doc: dict[str, Any] = {"status": "ok", "pid": os.getpid()}
            elif self.path == "/feed":
                doc = self.server.feed.document()
            else:
                doc = {}
        if not doc:
            self.send_error(404)
            return
        body = json.dumps(doc).encode()
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
    locks = Locks()
    feed = Feed(faults, locks)
    try:
        server = _Server((host, port), faults, feed, locks)
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
    # Signal handlers run in the main thread, which is the accepting thread: on the deadlock
    # fault it takes the state lock and waits for the feed's at once, so the hang starts the
    # moment the fault arrives (not at the next poll).
    faults.hooks["deadlock"] = lambda: locks.inverted(locks.state, locks.feed)
    threading.Thread(target=feed.receive_forever, name="feed", daemon=True).start()
    with server:
        print(f"dashboard: pid {os.getpid()}, http://{host}:{port}/health and /feed", flush=True)
        server.serve_forever(poll_interval=0.5)
    return 0
