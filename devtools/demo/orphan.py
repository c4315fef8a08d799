"""orphan: listen on a port forever, playing a stray process that holds the dashboard's port.

Run it outside any unit. It prints its PID once it listens (that line is its readiness), then
waits for a signal. SO_REUSEADDR lets it bind even while old connections of the port linger in
TIME_WAIT; the dashboard cannot bind while it listens.

With ``--fd N`` it binds nothing: it holds the listening socket its parent passed as
descriptor N. A harness that must take the port the instant a unit lets go of it (before
anything restarts the unit) binds it itself, then hands it over this way.
"""

from __future__ import annotations

import os
import signal
import socket
import sys


def run(port: int, host: str = "127.0.0.1", fd: int | None = None) -> int:
    """Hold `host`:`port` (or the listening socket `fd`) until killed."""
    if fd is not None:
        with socket.socket(fileno=fd):
            return _hold()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            print(f"orphan: cannot bind {host}:{port}: {exc.strerror}", file=sys.stderr)
            return 1
        sock.listen()
        return _hold()


def _hold() -> int:
    print(os.getpid(), flush=True)
    while True:
        signal.pause()
