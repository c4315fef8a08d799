"""The composition root: builds every part (`app.build`), then runs it in named phases.

`run` is start-up (bind HTTP, restore state), serve (each room's loop in one TaskGroup
until stop or halt; a reload is applied in place) and shutdown (save, close, within one
deadline: `app.stopping`). Signal
handlers only set events; shutdown and reload each happen in one place.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping

from supervisor.app.build import Hooks, Parts, build
from supervisor.app.fleet import Fleet
from supervisor.app.stopping import SHUTDOWN_DEADLINE_S, Step, stop_within
from supervisor.app.waiting import first_of
from supervisor.config import Config
from supervisor.errors import EXIT_OK, BusError, ConfigError
from supervisor.history.events import Kind
from supervisor.model import Clock, Snapshot, SystemClock
from supervisor.probing import runner

log = logging.getLogger(__name__)


class Daemon:
    """Everything the supervisor runs, wired together."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] = os.environ,
        load_config: Callable[[], Config] | None = None,
        keep_config: Callable[[Config], None] | None = None,
        shutdown_deadline_s: float = SHUTDOWN_DEADLINE_S,
    ) -> None:
        self._shutdown_deadline_s = shutdown_deadline_s
        self._load_config = load_config
        self._keep_config = keep_config or (lambda _config: None)  # for the last word
        self._wake, self._halt = asyncio.Event(), asyncio.Event()
        self.exit_code = EXIT_OK
        self.reloads = 0  # reloads handled, applied or rejected (tests wait on it)
        self.parts: Parts = build(config, clock or SystemClock(), env, Hooks(self._wake, self.halt))
        self._probe_tasks: list[asyncio.Task[None]] = []
        self._group: asyncio.TaskGroup | None = None

    @property
    def config(self) -> Config:
        """The config in force."""
        return self.parts.in_force.config

    @property
    def fleet(self) -> Fleet:
        """The current fleet (a reload replaces it)."""
        return self.parts.in_force.fleet

    def snapshot(self) -> Snapshot:
        """The current picture."""
        return self.fleet.model.snapshot()

    def wake(self) -> None:
        """Run a supervision pass soon."""
        self._wake.set()

    def halt(self, code: int) -> None:
        """Stop with `code` (a part found we must not go on)."""
        self.exit_code = code
        self._halt.set()

    # -- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, reload: asyncio.Event | None = None) -> int:
        """Serve until `stop` is set (or we must halt); returns the exit code.

        Raises OSError if the HTTP port cannot be bound.
        """
        await self.startup()
        try:
            await self.serve(stop, reload or asyncio.Event())
        finally:
            await self.shutdown()
        return self.exit_code

    async def startup(self) -> None:
        """Bind HTTP first (a taken port fails fast), then resume from the state file."""
        p = self.parts
        p.lock.acquire()  # first: a second instance must change nothing, bind nothing
        self._keep_config(self.config)  # valid, and the state directory is ours
        await p.http.start()
        await p.control.start()  # `supervisor hold|release|holds` reach us here
        log.info("serving /health and /metrics on http://%s:%d", self.config.http.host, p.http.port)
        p.sampler.start()
        p.history.start()
        p.history.started(unclean=p.keeper.restore())
        # Before READY=1 and on the loop, once: a crash from here on is noticed next time.
        p.keeper.save_now(running=True, final=False)

    async def serve(self, stop: asyncio.Event, reload: asyncio.Event) -> None:
        """Each room's loop in one TaskGroup; READY=1 once the bus was tried."""
        p = self.parts
        async with asyncio.TaskGroup() as group:
            self._group = group
            loops = [
                group.create_task(p.link.run()),
                group.create_task(p.supervision.run()),
                group.create_task(p.sentry.run()),
                group.create_task(p.alerts.run()),
                group.create_task(p.keeper.run()),
            ]
            self._start_probes()
            await p.link.tried.wait()
            p.notifier.ready()
            log.info("ready: watching %d targets", len(self.config.targets))
            while await first_of(stop, self._halt, reload) is reload:
                reload.clear()
                await self._reload()
            log.info("stopping")
            p.notifier.stopping()
            for task in [*loops, *self._probe_tasks]:
                task.cancel()

    async def shutdown(self) -> None:
        """Save (a halt is not a clean stop) and close every connection, within the deadline."""
        p = self.parts
        steps: list[Step] = [
            # An alert still waiting for its cause goes into the outbox without it.
            ("alerts", p.alerts.settle),
            ("state", lambda: p.keeper.save_now(running=self.exit_code != EXIT_OK, final=True)),
            ("history", lambda: p.history.stopped(self.exit_code)),
            ("event stream", p.stream.close),  # streams end now, not at the server's timeout
            ("recovery", self.fleet.repairer.close),
            ("probes", lambda: p.probing.session().close()),
            ("http", p.http.stop),
            ("control socket", p.control.stop),
            ("autopsies", p.autopsies.close),
            ("systemd", p.systemd.close),
            ("notify", p.notifier.close),
            # The last events and spans reach the file.
            ("history file", lambda: asyncio.to_thread(p.history.close)),
            ("lock", p.lock.release),
        ]
        await stop_within(steps, self._shutdown_deadline_s)

    def _start_probes(self) -> None:
        assert self._group is not None
        model, ctx = self.fleet.model, self.parts.probing
        runs = self.fleet.runs
        loops = [runner.loop(run, model, ctx) for run in runs if not runner.instant(run)]
        # One task and one timer for every instant probe (heartbeats, host memory and load).
        loops.append(runner.drive([r for r in runs if runner.instant(r)], model, ctx))
        self._probe_tasks = [self._group.create_task(loop) for loop in loops]

    async def _reload(self) -> None:
        """Re-read the config; a bad one is rejected and the running one stays in force."""
        self.parts.notifier.reloading()
        try:
            if self._load_config is None:
                raise ConfigError("(no file)", ["reload is not available"])
            # A thread: the check runs in a child process (seconds on a loaded box), and the
            # loop must keep serving /health and pinging the watchdog meanwhile.
            new = await asyncio.to_thread(self._load_config)
        except ConfigError as exc:
            log.error("reload rejected, keeping the running config: %s", exc)
            self.parts.history.record(Kind.SUPERVISOR, f"reload rejected: {exc}")
        else:
            await self._apply(new)
            self._keep_config(new)
        self.parts.notifier.ready()
        self.reloads += 1

    async def _apply(self, new: Config) -> None:
        p = self.parts
        if new.http != self.config.http:
            log.warning("[http] changes take effect at the next restart")
        for task in self._probe_tasks:
            task.cancel()
        await asyncio.gather(*self._probe_tasks, return_exceptions=True)
        p.reconfigure(new)
        for state in p.systemd.known_states():
            p.listener.unit_changed(state)
        self._start_probes()
        if p.systemd.connected:
            try:
                await p.systemd.refresh_all()
            except BusError as exc:
                log.warning("reading units after reload failed: %s", exc)
        p.supervision.forget_statuses()
        log.info("reloaded: watching %d targets", len(new.targets))
        p.history.reloaded([t.name for t in new.targets])
        self.wake()
