"""The composition root: builds every part from the config and runs the loops.

Signal handlers only set events; shutdown and reload each happen in one place. What depends
on the target list (health model, probes, recovery) lives in a `Fleet`, rebuilt in place on
reload; the bus connection, HTTP server, metrics and breaker live as long as the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable, Mapping
from typing import Any

from supervisor.alerts.delivery import AlertService, Commands
from supervisor.alerts.outbox import Outbox
from supervisor.alerts.policy import AlertPolicy
from supervisor.api import render
from supervisor.api.metrics import DaemonFacts, Metrics
from supervisor.api.server import HealthApp, HttpServer, HttpSettings
from supervisor.config import Config, TargetConfig, probe_ids
from supervisor.errors import EXIT_MEMORY_HARD_LIMIT, EXIT_OK, BusError, ConfigError
from supervisor.guard.breaker import Breaker, LoadSample
from supervisor.guard.load import SelfSampler, host_load, shed_memory
from supervisor.model import ActiveState, Clock, Snapshot, Status, SystemClock, UnitState
from supervisor.probing import probes
from supervisor.probing.resources import ProcReader
from supervisor.probing.schedule import ProbeSchedule
from supervisor.recovery.executor import Repairer
from supervisor.runtime.notify import Notifier
from supervisor.runtime.state import StateStore
from supervisor.watch.health import HealthModel, ProbeTrack, TargetSpec
from supervisor.watch.systemd import Systemd, bus_address

log = logging.getLogger(__name__)

_PASS_INTERVAL_S = 5.0  # the supervision loop's longest sleep when nothing wakes it
_BUS_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_MIB = 1024 * 1024

ProbeRun = tuple[TargetConfig, str, probes.Check, ProbeSchedule, float]


class Fleet:
    """What the target list defines: the health model, the probes and recovery."""

    def __init__(self, config: Config, daemon: Daemon, previous: Fleet | None = None) -> None:
        specs = [TargetSpec(t.name, t.unit, t.critical) for t in config.targets]
        self.model = HealthModel(specs, daemon.clock)
        self.repairer: Repairer = Repairer(
            config,
            clock=daemon.clock,
            model=self.model,
            systemd=daemon.systemd,
            metrics=daemon.metrics,
            wake=daemon.wake,
            previous=previous.repairer if previous else None,
            on_action=daemon.policy.note_action,
        )
        self.runs: list[ProbeRun] = []
        now = daemon.clock.monotonic()
        for target in config.targets:
            for pid, spec in zip(probe_ids(target), target.probes, strict=True):
                track = ProbeTrack(spec.failure_threshold, spec.success_threshold)
                self.model.add_probe(target.name, pid, spec.type, track)
                check = probes.build(
                    spec,
                    clock=daemon.clock,
                    session=daemon.session,
                    read_unit=daemon.unit_reader(target.unit),
                    reader=daemon.proc,
                )
                # A random first offset so many targets' probes do not fire together.
                first = now + daemon.rng.uniform(0, spec.period_s)
                sched = ProbeSchedule(track, spec.period_s, spec.confirm_interval_s, first)
                self.runs.append((target, pid, check, sched, spec.timeout_s))


class Daemon:
    """Everything the supervisor runs, wired together."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] = os.environ,
        load_config: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._load_config = load_config
        self._wake = asyncio.Event()
        self._halt = asyncio.Event()
        self.exit_code = EXIT_OK
        self.rng = random.Random()
        self.session = probes.session_factory()
        self.proc = ProcReader()
        self.systemd = Systemd(bus_address(env), [t.unit for t in config.targets])
        self.sampler = SelfSampler(self.clock)
        self.breaker = Breaker(config.breaker, config.budget)
        self.metrics = Metrics(
            self.snapshot, lambda: self.sampler.latest, self.clock, facts=self._facts
        )
        self.notifier = Notifier(env)
        self.policy = AlertPolicy(config.alerts, self.clock, _round_s(config))
        self.fleet = Fleet(config, self)
        self.store = StateStore(config.state_dir)
        self.outbox = Outbox()
        self.alerts = AlertService(
            config.alerts,
            clock=self.clock,
            outbox=self.outbox,
            host=socket.gethostname(),
            changed=self._state_changed,
            set_note=lambda text: self.fleet.model.set_note("alerts", text),
            commands=Commands(
                clock=self.clock,
                policy=self.policy,
                targets=lambda: [t.name for t in self.config.targets],
                status=lambda: render.table(render.health_document(self.snapshot())),
                restart=self._manual_restart,
                reset=self._reset,
            ),
        )
        self._saved: dict[str, Any] = {}
        self._dirty = True
        self._restore()
        http = config.http
        key = http.api_key.get_secret_value() if http.api_key else None
        app = HealthApp(self.snapshot, self.metrics.render, reset=self._reset, api_key=key)
        self.http = HttpServer(app.build(), HttpSettings(http.host, http.port, http.access_log))
        self._bus_tried = asyncio.Event()
        self._statuses: dict[str, Status] = {}
        self._probe_tasks: list[asyncio.Task[None]] = []
        self._group: asyncio.TaskGroup | None = None
        self.passes = 0  # completed supervision passes (tests wait on it instead of sleeping)
        self.load_samples = 0  # completed load samples (likewise)

    def _restore(self) -> None:
        """Resume from the state file: incidents, silences, outbox, attempts, give-ups."""
        saved = self.store.load()
        self.policy.restore(saved.get("alerts", {}))
        self.outbox.restore(saved.get("outbox", {}))
        self.fleet.repairer.restore(saved.get("recovery", {}))
        offset = saved.get("telegram_offset")
        self.alerts.offset = offset if isinstance(offset, int) else None
        if saved.get("running"):
            how = "the previous run ended without a clean stop (crash, watchdog or kill)"
            log.warning("supervisor restarted: %s", how)
            self.alerts.publish(self.policy.supervisor_restarted(how))

    def _state(self, running: bool) -> dict[str, Any]:
        return {
            "running": running,
            "alerts": self.policy.export(),
            "outbox": self.outbox.export(),
            "recovery": self.fleet.repairer.export(),
            "telegram_offset": self.alerts.offset,
        }

    def _state_changed(self) -> None:
        self._dirty = True
        self._wake.set()

    def _save(self, running: bool = True) -> None:
        """Write the state file if anything in it changed (atomic; failures only logged)."""
        state = self._state(running)
        if not self._dirty and state == self._saved:
            return
        if self.store.save(state):
            self._saved, self._dirty = state, False

    def snapshot(self) -> Snapshot:
        """The current picture."""
        return self.fleet.model.snapshot()

    def _facts(self) -> DaemonFacts:
        """What /metrics shows beyond the snapshot (read at scrape time, from memory)."""
        repairer, head = self.fleet.repairer, self.outbox.head()
        return DaemonFacts(
            gave_up=frozenset(name for name in repairer.policies if repairer.gave_up(name)),
            outbox_messages=len(self.outbox),
            outbox_oldest=head.created if head else None,
            outbox_dropped=self.outbox.dropped,
            budget=self.config.budget,
        )

    def wake(self) -> None:
        """Run a supervision pass soon."""
        self._wake.set()

    def unit_reader(self, unit: str) -> probes.ReadUnit:
        """How a resources probe reads its unit's cgroup figures."""
        return lambda: self.systemd.resources(unit)

    async def _manual_restart(self, name: str) -> str:
        return await self.fleet.repairer.manual_restart(name)

    def _reset(self, name: str) -> bool:
        return self.fleet.repairer.reset(name)

    # -- systemd.Listener ------------------------------------------------------------------

    def unit_changed(self, state: UnitState) -> None:
        """Apply a unit's new state at once (event-driven) and wake the supervision loop."""
        model = self.fleet.model
        name = model.name_for_unit(state.unit)
        if name is not None:
            model.apply_unit(name, state)
            self._wake.set()

    def bus_lost(self, reason: str) -> None:
        """Everything is unknown until we are back on the bus."""
        self.fleet.model.set_unknown(reason)
        self.fleet.model.set_note("bus", f"D-Bus: {reason}; reconnecting")
        self._wake.set()

    # -- running ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, reload: asyncio.Event | None = None) -> int:
        """Serve until `stop` is set (or we must halt); returns the exit code.

        Raises OSError if the HTTP port cannot be bound.
        """
        await self.http.start()
        log.info(
            "serving /health and /metrics on http://%s:%d", self.config.http.host, self.http.port
        )
        reload = reload or asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                loops = [
                    group.create_task(self._bus_loop()),
                    group.create_task(self._supervise()),
                    group.create_task(self._load_loop()),
                ]
                loops.append(group.create_task(self.alerts.run()))
                self._start_probes()
                self._save()
                await self._bus_tried.wait()
                self.notifier.ready()
                log.info("ready: watching %d targets", len(self.config.targets))
                while await _first(stop, self._halt, reload) is reload:
                    reload.clear()
                    await self._reload()
                log.info("stopping")
                self.notifier.stopping()
                for task in [*loops, *self._probe_tasks]:
                    task.cancel()
        finally:
            self._dirty = True
            self._save(running=self.exit_code != EXIT_OK)  # a halt is not a clean stop
            await self.fleet.repairer.close()
            await self.session().close()
            await self.http.stop()
            self.systemd.close()
            self.notifier.close()
        return self.exit_code

    def _start_probes(self) -> None:
        group = self._group
        assert group is not None
        self._probe_tasks = [group.create_task(self._probe_loop(*run)) for run in self.fleet.runs]

    async def _reload(self) -> None:
        """Re-read the config; a bad one is rejected and the running one stays in force."""
        self.notifier.reloading()
        try:
            if self._load_config is None:
                raise ConfigError("(no file)", ["reload is not available"])
            new = self._load_config()
        except ConfigError as exc:
            log.error("reload rejected, keeping the running config: %s", exc)
        else:
            await self._apply(new)
        self.notifier.ready()

    async def _apply(self, new: Config) -> None:
        if new.http != self.config.http:
            log.warning("[http] changes take effect at the next restart")
        for task in self._probe_tasks:
            task.cancel()
        await asyncio.gather(*self._probe_tasks, return_exceptions=True)
        old = self.fleet
        self.config = new
        if new.breaker != self.breaker.config or new.budget != self.breaker.budget:
            self.breaker = Breaker(new.breaker, new.budget)
        self.policy.configure(new.alerts, _round_s(new))
        self.fleet = Fleet(new, self, previous=old)
        self.systemd.watch(t.unit for t in new.targets)
        for state in self.systemd.known_states():
            self.unit_changed(state)
        self._start_probes()
        if self.systemd.connected:
            try:
                await self.systemd.refresh_all()
            except BusError as exc:
                log.warning("reading units after reload failed: %s", exc)
        self._statuses.clear()
        log.info("reloaded: watching %d targets", len(new.targets))
        self.wake()

    async def _bus_loop(self) -> None:
        """Stay connected to systemd: connect, read all, wait for loss, back off, repeat."""
        attempt = 0
        while True:
            try:
                await self.systemd.connect(self)
                self.fleet.model.set_note("bus", None)
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
        """Probe only active units (an inactive one is known bad) and only breaker closed."""
        if self.breaker.open:
            return False
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
            if self.fleet.model.apply_probe(result):
                self._wake.set()
            sched.ran(started, clock.monotonic())

    async def _load_loop(self) -> None:
        """Sample host and own load: feed the breaker, guard our memory budget."""
        host_load()  # prime psutil's CPU counter: the first reading is since this call
        while True:
            await asyncio.sleep(self.config.breaker.sample_interval_s)
            try:
                self._sample_load()
            except Exception:  # sampling must never stop supervision
                log.exception("sampling load failed")
            self.load_samples += 1

    def _sample_load(self) -> None:
        stats = self.sampler.sample()
        host = host_load()
        rss_mb = stats.rss_bytes / _MIB
        budget = self.config.budget
        if rss_mb > budget.memory_hard_mb:
            log.critical(
                "own memory %.0f MB is over the hard limit %g MB: exiting with %d so "
                "systemd restarts us",
                rss_mb,
                budget.memory_hard_mb,
                EXIT_MEMORY_HARD_LIMIT,
            )
            self.exit_code = EXIT_MEMORY_HARD_LIMIT
            self._halt.set()
            return
        if rss_mb > budget.memory_mb:
            shed_memory()
        sample = LoadSample(
            self.clock.monotonic(), host.cpu_percent, host.memory_percent, stats.cpu_percent, rss_mb
        )
        self.metrics.observe_load(host.cpu_percent, host.memory_percent)
        if self.breaker.observe(sample):
            if self.breaker.open:
                log.warning("%s", self.breaker.describe())
            else:
                log.info("breaker closed: host load back under the resume thresholds")
            self.metrics.observe_breaker(self.breaker.open, self.breaker.trips)
            self.fleet.model.set_note(
                "breaker", self.breaker.describe() if self.breaker.open else None
            )
            self.alerts.publish(self.policy.observe_breaker(self.breaker.open, self.breaker.reason))
            self._wake.set()

    async def _supervise(self) -> None:
        """One pass per wake-up or interval: recovery, report changes, STATUS=, watchdog."""
        interval = _PASS_INTERVAL_S
        if self.notifier.watchdog_interval_s is not None:
            interval = min(interval, self.notifier.watchdog_interval_s)
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
                backoff_ends = self.fleet.repairer.step() if self.systemd.connected else None
                if backoff_ends is not None:
                    wait = min(wait, backoff_ends)
                snap = self.snapshot()
                self._report(snap)
                self._alert(snap)
                self._save()
            except Exception:  # one bad pass must never stop supervision
                log.exception("supervision pass failed")
            # Pinged only after a completed pass: a stuck loop stops the pings.
            self.notifier.watchdog()
            self.passes += 1

    def _alert(self, snap: Snapshot) -> None:
        if not self.systemd.connected:
            return  # unknown is not failing: no alerts while we cannot see
        repairer = self.fleet.repairer
        for t in snap.targets:
            self.alerts.publish(self.policy.observe(t, repairer.gave_up(t.name)))
        self.alerts.publish(self.policy.flush())

    def _report(self, snap: Snapshot) -> None:
        for t in snap.targets:
            before = self._statuses.get(t.name)
            if before is not t.status:
                self._statuses[t.name] = t.status
                level = logging.INFO if t.status is Status.PASS else logging.WARNING
                if t.status is Status.UNKNOWN:  # the output already says "unknown: why"
                    log.log(level, "%s (%s): %s", t.name, t.unit, t.output)
                else:
                    log.log(level, "%s (%s) is %s: %s", t.name, t.unit, t.status.value, t.output)
        line = render.status_line(snap)
        if not self.breaker.open:
            line += "; breaker closed"
        self.notifier.status(line)


def _round_s(config: Config) -> dict[str, float]:
    """How long one failed round lasts per target: its shortest probe period."""
    return {t.name: min([t.period_s, *(p.period_s for p in t.probes)]) for t in config.targets}


async def _first(*events: asyncio.Event) -> asyncio.Event:
    """Wait until one of the events is set; return it."""
    waiters = {asyncio.ensure_future(e.wait()): e for e in events}
    try:
        done, _pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return waiters[next(iter(done))]
