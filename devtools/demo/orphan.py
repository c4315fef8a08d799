"""orphan: listen on a port forever, playing a stray process that holds the dashboard's port.

Run it outside any unit. It prints its PID once it listens (that line is its readiness), then
waits for a signal. SO_REUSEADDR lets it bind even while old connections of the port linger in
TIME_WAIT; the dashboard cannot bind while it listens.
"""

from __future__ import annotations

import os
import signal
import socket
import sys


def run(port: int, host: str = "127.0.0.1") -> int:
    """Hold `host`:`port` until killed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            print(f"orphan: cannot bind {host}:{port}: {exc.strerror}", file=sys.stderr)
            return 1
        sock.listen()
        print(os.getpid(), flush=True)
        while True:
            signal.pause()
