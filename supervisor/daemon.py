"""The composition root: builds every part from the config and runs the loops.

Signal handlers only set an event; shutdown happens in one place, with a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping

from supervisor import probes, render
from supervisor.config import Config, TargetConfig, probe_ids
from supervisor.errors import BusError
from supervisor.health import HealthModel, ProbeTrack, TargetSpec
from supervisor.http import HealthApp, HttpServer, HttpSettings
from supervisor.metrics import Metrics
from supervisor.model import (
    ActiveState,
    Clock,
    Snapshot,
    Status,
    SystemClock,
    UnitResources,
    UnitState,
)
from supervisor.notify import Notifier
from supervisor.repair import Repairer
from supervisor.resources import ProcReader
from supervisor.schedule import ProbeSchedule
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
        self._wake = asyncio.Event()
        self.systemd = Systemd(bus_address(env), [t.unit for t in config.targets])
        self.sampler = SelfSampler(self.clock)
        self.metrics = Metrics(self.model.snapshot, lambda: self.sampler.latest, self.clock)
        http = config.http
        key = http.api_key.get_secret_value() if http.api_key else None
        self.notifier = Notifier(env)
        self.repairer = Repairer(
            config,
            clock=self.clock,
            model=self.model,
            systemd=self.systemd,
            metrics=self.metrics,
            wake=self._wake_up,
        )
        app = HealthApp(
            self.model.snapshot, self.metrics.render, reset=self.repairer.reset, api_key=key
        ).build()
        self.http = HttpServer(app, HttpSettings(http.host, http.port, http.access_log))
        self._rng = random.Random()
        self._session = probes.session_factory()
        self._proc = ProcReader()
        self._probe_runs: list[tuple[TargetConfig, str, probes.Check, ProbeSchedule, float]] = []
        for target in config.targets:
            self._add_probes(target)
        self._bus_tried = asyncio.Event()
        self._statuses: dict[str, Status] = {}
        self.passes = 0  # completed supervision passes (tests wait on it instead of sleeping)

    def _add_probes(self, target: TargetConfig) -> None:
        now = self.clock.monotonic()
        for pid, spec in zip(probe_ids(target), target.probes, strict=True):
            track = ProbeTrack(spec.failure_threshold, spec.success_threshold)
            self.model.add_probe(target.name, pid, spec.type, track)
            check = probes.build(
                spec,
                clock=self.clock,
                session=self._session,
                read_unit=self._unit_reader(target.unit),
                reader=self._proc,
            )
            # A random first offset so many targets' probes do not fire together.
            first = now + self._rng.uniform(0, spec.period_s)
            sched = ProbeSchedule(track, spec.period_s, spec.confirm_interval_s, first)
            self._probe_runs.append((target, pid, check, sched, spec.timeout_s))

    def _unit_reader(self, unit: str) -> Callable[[], Awaitable[UnitResources]]:
        return lambda: self.systemd.resources(unit)

    def wake(self) -> None:
        """Run a supervision pass soon."""
        self._wake.set()

    def _wake_up(self) -> None:
        self._wake.set()

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
                tasks += [group.create_task(self._probe_loop(*run)) for run in self._probe_runs]
                await self._bus_tried.wait()
                self.notifier.ready()
                log.info("ready: watching %d targets", len(self.config.targets))
                await stop.wait()
                log.info("stopping")
                self.notifier.stopping()
                for task in tasks:
                    task.cancel()
        finally:
            await self.repairer.close()
            session = self._session()
            await session.close()
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

    def _probe_allowed(self, target: TargetConfig) -> bool:
        """Probe only active units: an inactive one is already known bad from D-Bus."""
        unit = self.systemd.state(target.unit)
        return unit is not None and unit.active_state is ActiveState.ACTIVE

    async def _probe_loop(
        self,
        target: TargetConfig,
        pid: str,
        check: probes.Check,
        sched: ProbeSchedule,
        timeout_s: float,
    ) -> None:
        """Run one probe on its schedule, forever; results go to the model at once."""
        clock = self.clock
        while True:
            await asyncio.sleep(max(0.0, sched.next_at - clock.monotonic()))
            started = clock.monotonic()
            if not self._probe_allowed(target):
                sched.skipped(started)
                continue
            before = self.systemd.state(target.unit)
            result = await probes.run(target.name, pid, check, timeout_s, clock)
            self.metrics.observe_probe(result)
            after = self.systemd.state(target.unit)
            if before is None or after is None or before.main_pid != after.main_pid:
                sched.skipped(clock.monotonic())  # about a process that is gone: discard
                continue
            if self.model.apply_probe(result):
                self._wake.set()
            sched.ran(started, clock.monotonic())

    async def _supervise(self) -> None:
        """One pass per wake-up or interval: report changes, STATUS=, watchdog ping."""
        interval = _PASS_INTERVAL_S
        if self.notifier.watchdog_interval_s is not None:
            interval = min(interval, self.notifier.watchdog_interval_s)
        last_sample = float("-inf")
        wait = interval
        while True:
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            wait = interval
            try:
                now = self.clock.monotonic()
                if now - last_sample >= _SELF_SAMPLE_S:
                    self.sampler.sample()
                    last_sample = now
                backoff_ends = self.repairer.step() if self.systemd.connected else None
                if backoff_ends is not None:
                    wait = min(wait, backoff_ends)
                self._report(self.model.snapshot())
            except Exception:  # one bad pass must never stop supervision
                log.exception("supervision pass failed")
            # Pinged only after a completed pass: a stuck loop stops the pings.
            self.notifier.watchdog()
            self.passes += 1

    def _report(self, snap: Snapshot) -> None:
        for t in snap.targets:
            before = self._statuses.get(t.name)
            if before is not t.status:
                self._statuses[t.name] = t.status
                level = logging.INFO if t.status is Status.PASS else logging.WARNING
                log.log(level, "%s (%s) is %s: %s", t.name, t.unit, t.status.value, t.output)
        self.notifier.status(render.status_line(snap))
