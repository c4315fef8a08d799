"""Stay on the bus: connect to systemd, re-read everything, wait for loss, back off, repeat."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from supervisor.errors import BusError
from supervisor.model import backoff
from supervisor.watch.systemd import Listener, Systemd

log = logging.getLogger(__name__)

BUS_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class BusLink:
    """The connection loop; `tried` is set once the first attempt is over, either way."""

    def __init__(
        self, systemd: Systemd, listener: Listener, on_connected: Callable[[], None]
    ) -> None:
        self._systemd = systemd
        self._listener = listener
        self._on_connected = on_connected
        self.tried = asyncio.Event()

    async def run(self) -> None:
        """Forever: a lost bus is never fatal, only retried with a capped backoff."""
        attempt = 0
        while True:
            try:
                await self._systemd.connect(self._listener)
                self._on_connected()
                if attempt:
                    log.info("reconnected to the bus after %d attempts", attempt)
                attempt = 0
                self.tried.set()
                reason = await self._systemd.wait_closed()
            except BusError as exc:
                reason = str(exc)
            self.tried.set()
            self._systemd.close()
            self._listener.bus_lost(reason)
            delay = backoff(BUS_BACKOFF_S, attempt)
            attempt += 1
            log.warning("D-Bus: %s; retrying in %.1f s", reason, delay)
            await asyncio.sleep(delay)
