"""The composition root: builds every part from the config and runs the loops.

Signal handlers only set an event; shutdown happens in one place, with a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from supervisor import render
from supervisor.config import Config
from supervisor.errors import BusError
from supervisor.health import HealthModel, TargetSpec
from supervisor.http import HealthApp, HttpServer, HttpSettings
from supervisor.metrics import Metrics
from supervisor.model import Clock, Snapshot, Status, SystemClock, UnitState
from supervisor.notify import Notifier
from supervisor.selfstats import SelfSampler
from supervisor.systemd import Systemd, bus_address

log = logging.getLogger(__name__)

_PASS_INTERVAL_S = 5.0  # the supervision loop's longest sleep when nothing wakes it
_SELF_SAMPLE_S = 5.0
_BUS_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Daemon:
    """Everything the supervisor runs, wired together."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        specs = [TargetSpec(t.name, t.unit, t.critical) for t in config.targets]
        self.model = HealthModel(specs, self.clock)
        self.systemd = Systemd(bus_address(env), [t.unit for t in config.targets])
        self.sampler = SelfSampler(self.clock)
        self.metrics = Metrics(self.model.snapshot, lambda: self.sampler.latest, self.clock)
        app = HealthApp(self.model.snapshot, self.metrics.render).build()
        http = config.http
        self.http = HttpServer(app, HttpSettings(http.host, http.port, http.access_log))
        self.notifier = Notifier(env)
        self._wake = asyncio.Event()
        self._bus_tried = asyncio.Event()
        self._statuses: dict[str, Status] = {}

    def snapshot(self) -> Snapshot:
        """The current picture."""
        return self.model.snapshot()

    # -- systemd.Listener ------------------------------------------------------------------

    def unit_changed(self, state: UnitState) -> None:
        """Apply a unit's new state at once (event-driven) and wake the supervision loop."""
        name = self.model.name_for_unit(state.unit)
        if name is not None:
            self.model.apply_unit(name, state)
            self._wake.set()

    def bus_lost(self, reason: str) -> None:
        """Everything is unknown until we are back on the bus."""
        self.model.set_unknown(reason)
        self.model.set_note("bus", f"D-Bus: {reason}; reconnecting")
        self._wake.set()

    # -- loops -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; raises OSError if the HTTP port cannot be bound."""
        await self.http.start()
        log.info(
            "serving /health and /metrics on http://%s:%d", self.config.http.host, self.http.port
        )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._bus_loop()), group.create_task(self._supervise())]
                await self._bus_tried.wait()
                self.notifier.ready()
                log.info("ready: watching %d targets", len(self.config.targets))
                await stop.wait()
                log.info("stopping")
                self.notifier.stopping()
                for task in tasks:
                    task.cancel()
        finally:
            await self.http.stop()
            self.systemd.close()
            self.notifier.close()

    async def _bus_loop(self) -> None:
        """Stay connected to systemd: connect, read all, wait for loss, back off, repeat."""
        attempt = 0
        while True:
            try:
                await self.systemd.connect(self)
                self.model.set_note("bus", None)
                if attempt:
                    log.info("reconnected to the bus after %d attempts", attempt)
                attempt = 0
                self._bus_tried.set()
                reason = await self.systemd.wait_closed()
            except BusError as exc:
                reason = str(exc)
            self._bus_tried.set()
            self.systemd.close()
            self.bus_lost(reason)
            delay = _BUS_BACKOFF_S[min(attempt, len(_BUS_BACKOFF_S) - 1)]
            attempt += 1
            log.warning("D-Bus: %s; retrying in %.1f s", reason, delay)
            await asyncio.sleep(delay)

    async def _supervise(self) -> None:
        """One pass per wake-up or interval: report changes, STATUS=, watchdog ping."""
        interval = _PASS_INTERVAL_S
        if self.notifier.watchdog_interval_s is not None:
            interval = min(interval, self.notifier.watchdog_interval_s)
        last_sample = float("-inf")
        while True:
            try:
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                now = self.clock.monotonic()
                if now - last_sample >= _SELF_SAMPLE_S:
                    self.sampler.sample()
                    last_sample = now
                self._report(self.model.snapshot())
            except Exception:  # one bad pass must never stop supervision
                log.exception("supervision pass failed")
            # Pinged only after a completed pass: a stuck loop stops the pings.
            self.notifier.watchdog()

    def _report(self, snap: Snapshot) -> None:
        for t in snap.targets:
            before = self._statuses.get(t.name)
            if before is not t.status:
                self._statuses[t.name] = t.status
                level = logging.INFO if t.status is Status.PASS else logging.WARNING
                log.log(level, "%s (%s) is %s: %s", t.name, t.unit, t.status.value, t.output)
        self.notifier.status(render.status_line(snap))
