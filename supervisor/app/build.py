"""Building: every part of the supervisor from the config and the environment, with no I/O.

What a reload replaces (the config and the fleet) is one frozen `InForce` (`app/fleet.py`):
each part that reads it is handed the first in its constructor, and `Parts.use` hands each
reload's new one to them all, in one place. What outlives a reload (the breaker, the notes)
is held by its readers directly.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from supervisor import __version__
from supervisor.alerts.commands import Commands
from supervisor.alerts.delivery import AlertService, Evidence
from supervisor.alerts.outbox import Outbox
from supervisor.alerts.policy import AlertPolicy
from supervisor.api.control import FILE_NAME as CONTROL_FILE
from supervisor.api.control import ControlServer
from supervisor.api.history import HistoryRoutes
from supervisor.api.metrics import Metrics
from supervisor.api.page import StatusPage
from supervisor.api.server import HealthApp, Routes
from supervisor.api.stream import EventStream
from supervisor.api.tally import DaemonFacts
from supervisor.api.transport import HttpServer
from supervisor.app.dispatch import Dispatcher
from supervisor.app.fleet import Fleet, InForce, build_fleet
from supervisor.app.holding import HoldDesk
from supervisor.app.persist import StateKeeper
from supervisor.app.serving import http_server
from supervisor.app.subscribers import (
    to_activity,
    to_alert_notes,
    to_history,
    to_journal,
    to_metrics,
    to_unit_history,
)
from supervisor.app.supervision import Supervision, pass_interval
from supervisor.config import Config
from supervisor.errors import EXIT_MEMORY_HARD_LIMIT
from supervisor.guard.activity import Activity
from supervisor.guard.breaker import Breaker
from supervisor.guard.load import HostLoad, SelfSampler
from supervisor.guard.sentry import GuardHooks, Sentry
from supervisor.guard.throttle import Throttle
from supervisor.happenings import BreakerChanged, BusConnected, Emit, Happening
from supervisor.history import report
from supervisor.history.recorder import Recorder
from supervisor.history.store import FILE_NAME, HistoryStore
from supervisor.model import Clock, ProbeResult
from supervisor.probing import hang, probes, runner
from supervisor.probing.resources import ProcReader
from supervisor.redaction import scrub_shapes
from supervisor.runtime import logs, tls
from supervisor.runtime.notify import Notifier
from supervisor.runtime.state import InstanceLock, StateStore
from supervisor.watch.autopsy import Autopsies
from supervisor.watch.health import Notes
from supervisor.watch.lastwords import LastWordsReader, Limits
from supervisor.watch.link import BusLink
from supervisor.watch.listener import UnitListener
from supervisor.watch.systemd import Systemd
from supervisor.watch.units import bus_address


@dataclass(frozen=True)
class Hooks:
    """What the parts report to the daemon."""

    wake: asyncio.Event  # run a supervision pass soon
    halt: Callable[[int], None]  # stop with this exit code


@dataclass
class Parts:
    """Everything the daemon runs."""

    in_force: InForce  # the config and fleet in force; `use` hands a new one to its readers
    clock: Clock
    systemd: Systemd
    sampler: SelfSampler
    metrics: Metrics
    notifier: Notifier
    policy: AlertPolicy
    probing: runner.ProbeContext
    alerts: AlertService
    keeper: StateKeeper
    lock: InstanceLock
    sentry: Sentry
    link: BusLink
    supervision: Supervision
    http: HttpServer
    fleet_for: Callable[..., Fleet]  # `build_fleet` with what every fleet shares
    history: Recorder
    stream: EventStream
    desk: HoldDesk
    control: ControlServer
    autopsies: Autopsies
    dispatcher: Dispatcher
    listener: UnitListener
    breaker: Breaker  # reconfigured in place by a reload: its state is the daemon's
    notes: Notes  # the fleet-level degradations /health shows; they outlive a reload
    app: HealthApp
    commands: Commands

    def reconfigure(self, new: Config) -> None:
        """Put `new` in force, keeping what the old config's parts knew (a reload)."""
        self.breaker.reconfigure(new.breaker, new.budget)
        self.policy.configure(new.alerts, round_s(new), new.dependencies)
        self.alerts.configure(new.alerts)  # rebuilds delivery and command rights if changed
        self.use(InForce(new, self.fleet_for(new, previous=self.in_force.fleet)))
        self.systemd.watch(new.units())

    def use(self, in_force: InForce) -> None:
        """Hand `in_force` to every part that reads it: the one place a reload reaches them
        (each got the first one in its constructor)."""
        fleet = in_force.fleet
        self.in_force = in_force
        self.metrics.use(fleet.model.snapshot, _facts(in_force, self.alerts.outbox, self.policy))
        self.app.use(fleet.model.snapshot, fleet.repairer.reset)
        repairer = fleet.repairer
        self.commands.use(
            targets=fleet.names,
            status=fleet.status,
            restart=repairer.manual_restart,
            reset=repairer.reset,
        )
        self.desk.use(fleet)
        self.keeper.use(fleet)
        self.listener.use(fleet.model)
        self.supervision.use(fleet)
        self.history.use(fleet.names())
        self.autopsies.use(_limits(in_force.config))


def round_s(config: Config) -> dict[str, float]:
    """How long one failed round lasts per target: its shortest probe period."""
    return {t.name: min([t.period_s, *(p.period_s for p in t.probes)]) for t in config.targets}


def _facts(in_force: InForce, outbox: Outbox, policy: AlertPolicy) -> Callable[[], DaemonFacts]:
    """What /metrics shows beyond the snapshot (read at scrape time, from memory)."""

    def read() -> DaemonFacts:
        repairer, head = in_force.fleet.repairer, outbox.oldest()
        return DaemonFacts(
            gave_up=frozenset(name for name in repairer.policies if repairer.gave_up(name)),
            outbox_messages=len(outbox),
            outbox_oldest=head.created if head else None,
            outbox_dropped=outbox.dropped,
            incidents_open=len(policy.incidents),
            budget=in_force.config.budget,
        )

    return read


def build(config: Config, clock: Clock, env: Mapping[str, str], hooks: Hooks) -> Parts:
    """Every part, wired; nothing runs and nothing is read until the daemon starts."""
    breaker, notes = Breaker(config.breaker, config.budget), Notes()
    systemd = Systemd(bus_address(env), config.units())
    sampler = SelfSampler(clock)
    outbox = Outbox()
    policy = AlertPolicy(config.alerts, clock, round_s(config), config.dependencies)
    history = _history(config, clock, notes)
    dispatcher = Dispatcher()  # its subscribers join below, once they exist
    autopsies = _autopsies(clock, config, systemd, dispatcher.emit)
    hangs, hung = _hangs(clock, history)

    def observe_probe(result: ProbeResult) -> None:
        metrics.observe_probe(result)
        history.probe(result)
        for name, value in result.samples:
            if name == "memory_bytes":  # the last reading, for an OOM kill's words
                autopsies.observe_memory(result.target, value)

    activity = Activity(clock)
    activity.mark()  # starting up is handling: its CPU is the job (`guard.activity`)
    probing = runner.ProbeContext(
        clock=clock,
        session=probes.session_factory(),
        tls=tls.client,
        reader=ProcReader(),
        read_unit=lambda unit: lambda: systemd.resources(unit),
        unit_state=systemd.state,
        paused=lambda: breaker.open,
        observe=observe_probe,
        wake=hooks.wake.set,
        environ=env,
        hung=hung,
        examining=activity.mark,
    )
    fleet_for = partial(
        build_fleet, clock=clock, systemd=systemd, probing=probing, rng=random.Random(),
        emit=dispatcher.emit, notes=notes,
    )  # fmt: skip
    fleet = fleet_for(config)
    in_force = InForce(config, fleet)
    metrics = Metrics(
        fleet.model.snapshot, lambda: sampler.latest, clock, facts=_facts(in_force, outbox, policy)
    )
    desk = HoldDesk(fleet, policy=policy, clock=clock, emit=dispatcher.emit, wake=hooks.wake.set)
    commands = Commands(
        clock=clock,
        policy=policy,
        targets=fleet.names,
        status=fleet.status,
        restart=fleet.repairer.manual_restart,
        reset=fleet.repairer.reset,
        hold=desk.hold,
        release=desk.release,
    )
    alerts = AlertService(
        config.alerts,
        clock=clock,
        outbox=outbox,
        host=socket.gethostname(),
        changed=hooks.wake.set,  # the pass saves the state when it differs from the file
        set_note=notes.writer("alerts"),
        emit=dispatcher.emit,
        why=lambda target, since: _evidence(autopsies, hangs, target, since),
        commands=commands,
        durable=lambda: keeper.flush(),  # noqa: PLW0108 (the keeper, made next, needs this)
    )
    keeper = StateKeeper(
        StateStore(config.state_dir), policy=policy, outbox=outbox, alerts=alerts, fleet=fleet
    )

    def observe_load(host: HostLoad) -> None:
        metrics.observe_load(host.cpu_percent, host.memory_percent)

    _subscribe(
        dispatcher,
        notes,
        metrics=metrics,
        history=history,
        policy=policy,
        alerts=alerts,
        hooks=hooks,
    )

    def breaker_changed(breaker: Breaker) -> None:
        changed = BreakerChanged(breaker.open, breaker.trips, breaker.describe(), breaker.reason)
        dispatcher.emit(changed)

    def over_limit() -> None:
        hooks.halt(EXIT_MEMORY_HARD_LIMIT)

    throttle = Throttle()
    guard = GuardHooks(observe_load, breaker_changed, over_limit, notes.writer("http"))
    dispatcher.subscribe(to_activity(activity))
    sentry = Sentry(clock, sampler, throttle, guard, breaker=breaker, handling=activity.handling)

    listener = UnitListener(fleet.model, autopsies, dispatcher.emit, hooks.wake.set)
    link = BusLink(systemd, listener, lambda: dispatcher.emit(BusConnected()))
    notifier = Notifier(env)
    supervision = Supervision(
        fleet=fleet,
        breaker=breaker,
        systemd=systemd,
        policy=policy,
        alerts=alerts,
        keeper=keeper,
        ping=notifier.watchdog,
        show_status=notifier.status,
        wake=hooks.wake,
        history=history,
        desk=desk,
        emit=dispatcher.emit,
        interval_s=pass_interval(notifier.watchdog_interval_s),
    )
    stream = EventStream()
    history.subscribe(lambda event: stream.publish(event.id, event.document()))
    about = lambda: report.about(__version__, sampler.latest, breaker.budget)  # noqa: E731
    routes: list[Routes] = [HistoryRoutes(history, about), stream, StatusPage()]
    server, app = http_server(
        config,
        metrics,
        clock,
        throttle,
        snapshot=fleet.model.snapshot,
        reset=fleet.repairer.reset,
        routes=routes,
        desk=desk,
    )
    return Parts(
        in_force, clock, systemd, sampler, metrics, notifier, policy, probing, alerts, keeper,
        InstanceLock(config.state_dir), sentry, link, supervision, server, fleet_for,
        history, stream, desk, ControlServer(config.state_dir / CONTROL_FILE, desk.handle),
        autopsies, dispatcher, listener, breaker, notes, app, commands,
    )  # fmt: skip


async def _evidence(
    autopsies: Autopsies, hangs: hang.Hangs, target: str, since: float
) -> Evidence | None:
    """The cause and last lines (or a hang's evidence) of the failure that opened (or
    renewed) an incident, if any: the later of the two when both happened in it."""
    death = await autopsies.wait(target)
    hung = hangs.latest(target)
    if hung is not None and hung[0] >= since - _STALE_S and (death is None or death.at < hung[0]):
        return hung[1].words, hung[1].lines
    if death is None or death.at < since - _STALE_S:
        return None  # none yet, or one from before this incident began
    lines = death.log.lines or (f"(no log lines: {death.log.unavailable})",)
    return death.cause.words, lines


_STALE_S = 5.0  # a death seen this long before its incident opened belongs to another


def _hangs(clock: Clock, history: Recorder) -> tuple[hang.Hangs, Callable[[str, hang.Hang], None]]:
    """Where hangs are kept (for the alert), and what a probe that failed hung tells."""
    hangs = hang.Hangs()

    def hung(target: str, found: hang.Hang) -> None:
        hangs.seen(target, found, clock.time())
        history.failure_cause(target, found.document(), found.log())

    return hangs, hung


def _limits(config: Config) -> Limits:
    """How much of each death's output to keep."""
    return Limits(lines=config.causes.log_lines, width=config.causes.log_line_width)


def _autopsies(clock: Clock, config: Config, systemd: Systemd, emit: Emit) -> Autopsies:
    """Each death's cause and last lines, read when it happens, emitted as a typed event."""

    def scrub(line: str) -> str:  # our secrets, then whatever looks like one
        return scrub_shapes(logs.redacted(line))

    reader = LastWordsReader(scrub)
    return Autopsies(
        systemd, reader=reader, procs=ProcReader(), clock=clock, limits=_limits(config), emit=emit
    )


def _subscribe(
    dispatcher: Dispatcher,
    notes: Notes,
    *,
    metrics: Metrics,
    history: Recorder,
    policy: AlertPolicy,
    alerts: AlertService,
    hooks: Hooks,
) -> None:
    """Every destination of the parts' events, subscribed to the one dispatcher."""
    for subscriber in (
        to_metrics(metrics),
        to_journal,
        to_history(history),
        to_unit_history(history.unit),
    ):
        dispatcher.subscribe(subscriber)
    dispatcher.subscribe(to_alert_notes(policy.note_action))

    def to_daemon(event: Happening) -> None:
        """The notes /health shows, the breaker's incident, and a pass soon."""
        match event:
            case BreakerChanged(is_open, _trips, description, reason):
                notes.set("breaker", description if is_open else None)
                alerts.publish(policy.observe_breaker(is_open, reason))
                hooks.wake.set()
            case BusConnected():
                notes.set("bus", None)

    dispatcher.subscribe(to_daemon)


def _history(config: Config, clock: Clock, notes: Notes) -> Recorder:
    """The recorder over the SQLite store in state_dir (none when [history] is off)."""
    cfg = config.history
    store = None
    if cfg.enabled:
        store = HistoryStore(
            config.state_dir / FILE_NAME, retention_days=cfg.retention_days, max_mb=cfg.max_mb
        )
    return Recorder(
        store,
        clock,
        targets=[t.name for t in config.targets],
        on_note=notes.writer("history"),
    )
