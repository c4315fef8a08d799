"""sd_notify in a few lines: one datagram per message on $NOTIFY_SOCKET.

Silent and leak-free when NOTIFY_SOCKET is unset; never blocks (a full socket buffer drops
the message rather than stalling the supervision loop).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Talks to the service manager that started us, if any."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None  # opened at the first message
        self.watchdog_interval_s = _watchdog_interval(env)
        self._status = ""

    @property
    def enabled(self) -> bool:
        """True when a manager listens."""
        return bool(self._address)

    def send(self, message: str) -> bool:
        """Send one message; False if there is no manager or it could not be sent."""
        if not self._address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message.encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify %r failed: %s", message.split("=", 1)[0], exc)
            return False
        return True

    def ready(self) -> None:
        """READY=1: start-up is complete."""
        self.send("READY=1")

    def status(self, text: str) -> None:
        """STATUS=: sent only when the text changes."""
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        """WATCHDOG=1: the supervision loop completed a pass."""
        if self.watchdog_interval_s is not None:
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        """STOPPING=1: shutdown has begun."""
        self.send("STOPPING=1")

    def reloading(self) -> None:
        """RELOADING=1 with the monotonic time systemd 253+ asks for (252 ignores it)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def close(self) -> None:
        """Release the socket (idempotent)."""
        sock, self._sock = self._sock, None
        self._address = ""  # closed for good: nothing reopens it
        if sock is not None:
            sock.close()


def _address(value: str) -> str:
    if value.startswith("@"):  # abstract namespace
        return "\0" + value[1:]
    return value if value.startswith("/") else ""


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of WATCHDOG_USEC, if the watchdog is meant for this process."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
        pid = int(env.get("WATCHDOG_PID", "0") or 0)
    except ValueError:
        return None
    if usec <= 0 or (pid and pid != os.getpid()):
        return None
    return usec / 2e6
