"""One chaos run, start to end: the supervisor and its observers up, a warm-up fault, the plan,
settling, the last samples; and, whatever happens (a failed check, an error, Ctrl-C),
everything it started stopped again."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from devtools.chaos.control import TICK_S, Controller, Say
from devtools.chaos.daemon import SupervisorProcess, UnitSettings
from devtools.chaos.ground import UnitPoller
from devtools.chaos.inject import Injector
from devtools.chaos.observe import (
    Feed,
    HealthPoller,
    LogTail,
    MetricsPoller,
    Poller,
    ProcSampler,
)
from devtools.chaos.plan import TARGETS, Kind, Planned, make_plan
from devtools.chaos.record import Fault, Record
from devtools.chaos.settings import (
    BASE_COOLDOWN_S,
    CHATS,
    MAX_ATTEMPTS,
    MEMORY_MARGIN_MB,
    Fleet,
    Settings,
    config_text,
    critical_targets,
)
from devtools.chaos.telegram import BotThread
from devtools.net import free_port
from devtools.sandbox import Sandbox
from supervisor.probing.resources import ProcReader

READY_TIMEOUT_S = 60.0
QUIET_SAMPLES = 6  # footprint samples taken at a lull and at the end, with nothing under way
LULL_CAP_S = 90.0  # a lull waits this long at most for everything to settle


class ChaosError(Exception):
    """The run itself could not go on (not a finding about the supervisor)."""


@dataclass
class Parts:
    """What a run starts, so that it can all be stopped."""

    bot: BotThread
    sup: SupervisorProcess
    injector: Injector
    feed: Feed
    pollers: list[Poller]
    controller: Controller


def chaos(box: Sandbox, settings: Settings, seed: int, work: Path, say: Say) -> Record:
    """Run the faults of `seed` against the supervisor watching `box` (which must be up)."""
    record = Record(seed=seed, short=settings.short, max_attempts=MAX_ATTEMPTS)
    with _started(box, settings, record, work, say) as parts:
        ctl = parts.controller
        _wait_for_fleet(parts, say)
        _warm_up(parts, record, settings, say)
        plan = make_plan(seed, settings.shape)
        say(f"seed {seed}: {len(plan)} faults over {settings.shape.seconds:g} s")
        ctl.pending = [Fault(p) for p in plan]
        record.faults.extend(ctl.pending)
        record.started = ctl.phase_start = time.time()
        _faults(ctl, record, settings, say)
        _settle(parts, record, settings, say)
        ctl.stopping = True
        code = parts.sup.stop()
        say(f"supervisor stopped with status {code}")
        if code != 0:
            record.errors.append(f"the supervisor's last life exited {code} on SIGTERM")
        record.messages = parts.bot.messages()
        record.loads = list(parts.injector.loads)
    return record


@contextlib.contextmanager
def _started(
    box: Sandbox, settings: Settings, record: Record, work: Path, say: Say
) -> Iterator[Parts]:
    """Everything the run needs, started; stopped again on the way out, whatever happened."""
    with contextlib.ExitStack() as stack:
        bot = BotThread()
        stack.callback(bot.close)
        bot.start()
        fleet = Fleet(box, work / "state", free_port(), bot.url, bot.token, _memory_limits(box))
        if box.account is not None:  # unprivileged: the supervisor runs as the fleet's user
            fleet.state_dir.mkdir(parents=True, exist_ok=True)
            box.account.give(fleet.state_dir)
        config = work / "config.toml"
        config.write_text(config_text(settings, fleet))
        unit = UnitSettings.read()
        log = work / "supervisor.log"
        state = fleet.state_dir / "state.json"
        run_as = box.as_account()
        sup = SupervisorProcess(config, log, {**_env(box)}, unit, run_as, state_file=state)
        stack.callback(sup.close)
        record.chats, record.watchdog_s = CHATS, unit.watchdog_s
        record.alert_cooldown_s, record.round_s = BASE_COOLDOWN_S, settings.period_s
        record.recovery_window_s = settings.recovery_window_s
        record.probe_allowance_s = settings.probe_allowance_s
        record.lives = sup.lives

        written = [0]  # configs written since the first: each reload's differs from the last

        def reconfigure(variant: int) -> tuple[str, ...]:
            written[0] += 1
            config.write_text(config_text(settings, fleet, variant, written[0]))
            return critical_targets(written[0])

        injector = Injector(
            box, sup, bot, http_port=fleet.http_port, work=work, reconfigure=reconfigure
        )
        stack.callback(injector.close)
        feed = Feed(record)
        ctl = Controller(settings, record, feed, sup, injector, say)
        pollers = _pollers(feed, box, sup, fleet, ctl)
        for poller in pollers:
            poller.start()
            stack.callback(poller.stop)
        sup.spawn()
        say(f"supervisor started (pid {sup.life.pid if sup.life else '?'}); work in {work}")
        yield Parts(bot, sup, injector, feed, pollers, ctl)


def _env(box: Sandbox) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SUPERVISOR_", "WATCHDOG", "JOURNAL_", "NOTIFY_"))
    }
    return {**env, **box.env(), "PYTHONUNBUFFERED": "1"}


def _pollers(
    feed: Feed, box: Sandbox, sup: SupervisorProcess, fleet: Fleet, ctl: Controller
) -> list[Poller]:
    def life_n() -> int:
        return sup.life.n if sup.life else 0

    def life_pid() -> tuple[int, int] | None:
        life = sup.life
        return (life.n, life.pid) if life is not None and sup.ready() else None

    return [
        HealthPoller(feed, fleet.http_port, life_n),
        MetricsPoller(feed, fleet.http_port, life_n),
        UnitPoller(feed, box, TARGETS),
        LogTail(feed, sup.log),
        ProcSampler(feed, life_pid, fleet.state_dir / "state.json", lambda: ctl.quiet),
    ]


def _memory_limits(box: Sandbox) -> dict[str, int]:
    """Each unit's resources limit: its memory now plus a margin one memory fault exceeds."""
    reader, limits = ProcReader(), {}
    for target in TARGETS:
        current = box.show(target, "MemoryCurrent").get("MemoryCurrent", "")
        cgroup = int(current) if current.isdigit() and int(current) < 2**62 else 0
        rss = reader.rss_bytes([box.main_pid(target)])
        limits[target] = math.ceil(max(cgroup, rss) / 2**20) + MEMORY_MARGIN_MB
    return limits


def _until(ctl: Controller, done: Callable[[], bool], seconds: float) -> bool:
    """Tick until `done()` or `seconds` passed (one tick at least); True if it was done."""
    deadline = time.monotonic() + seconds
    while True:
        ctl.tick()
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(TICK_S)  # the tick's own period: the controller polls what the threads saw


def _wait_for_fleet(parts: Parts, say: Say) -> None:
    ctl, feed = parts.controller, parts.feed

    def all_pass() -> bool:
        latest = feed.latest
        return (
            parts.sup.ready()
            and latest is not None
            and all(latest.statuses.get(t) == "pass" for t in TARGETS)
        )

    if not _until(ctl, all_pass, READY_TIMEOUT_S):
        raise ChaosError(
            f"the supervisor did not report every target passing within {READY_TIMEOUT_S:g} s "
            f"(see {parts.sup.log})"
        )
    say("every target passes")


def _warm_up(parts: Parts, record: Record, settings: Settings, say: Say) -> None:
    """Every path once before footprints count: a hang (probe, restart), a chat command, and a
    supervisor kill, whose "restarted" notice goes to both chats at once (each chat's sender
    keeps its own connection to Telegram open afterwards: that is no leak)."""
    ctl, bot = parts.controller, parts.bot
    record.began = time.time()
    warm_up = [Planned(0, 0.0, Kind.HANG, "dashboard")]
    if settings.warm_up_kill:
        warm_up.append(Planned(0, 0.0, Kind.SUPERVISOR_KILL, None))
    for planned in warm_up:
        warm = Fault(planned)
        record.faults.append(warm)
        ctl.pending = [warm]
        ctl.phase_start = time.time()
        _until(ctl, lambda: not ctl.pending and not ctl.active, math.inf)
    sent, after = len(bot.messages()), time.time()
    bot.command(CHATS[0], "/status")
    replied = _until(ctl, lambda: len(bot.messages()) > sent, READY_TIMEOUT_S)
    settled = _until(ctl, lambda: ctl.quiet and _quiet_samples(record, after) >= 2, 60)
    say(
        "warm-up done"
        + ("" if replied else ", no reply to /status")
        + ("" if settled else ", never quiet")
    )


def _faults(ctl: Controller, record: Record, settings: Settings, say: Say) -> None:
    """The plan, with a lull every `lull_every_s`: the footprint is measured while nothing
    happens, and a long life of the supervisor must span two such moments to be measured."""
    every = settings.lull_every_s or math.inf
    next_lull = every
    while ctl.pending or ctl.active:
        if ctl.pending and time.time() - ctl.phase_start >= next_lull:
            _lull(ctl, record, say)
            next_lull += every
        # One tick per TICK_S: a loop without the pause took a whole core from the machine
        # the supervisor (at Nice=10) shares, and /health answers looked late because of it.
        ctl.tick()
        time.sleep(TICK_S)


def _lull(ctl: Controller, record: Record, say: Say) -> None:
    began = time.time()
    ctl.holding = True
    quiet = _until(ctl, lambda: _quiet_samples(record, began) >= QUIET_SAMPLES, LULL_CAP_S)
    ctl.holding = False
    ctl.phase_start += time.time() - began  # the plan resumes where it paused
    say(f"lull of {time.time() - began:.0f} s{'' if quiet else ' (never quiet)'}")


def _quiet_samples(record: Record, since: float = 0.0) -> int:
    return sum(1 for s in record.proc if s.quiet and s.at >= since)


def _settle(parts: Parts, record: Record, settings: Settings, say: Say) -> None:
    """Everything repaired and delivered, then a few quiet footprint samples."""
    ctl, feed = parts.controller, parts.feed

    def settled() -> bool:
        latest = feed.latest
        healthy = latest is not None and all(latest.statuses.get(t) == "pass" for t in TARGETS)
        # A target passes a few seconds before its probes have judged the new process and
        # its incident is resolved: the run ends once the supervisor holds none open.
        return ctl.quiet and healthy and feed.incidents == 0

    if not _until(ctl, settled, settings.settle_cap_s):
        record.errors.append(
            f"not settled within {settings.settle_cap_s:g} s after the last fault "
            "(a target not passing, an incident not resolved, or alerts still waiting)"
        )
    record.finished = time.time()
    _until(ctl, lambda: _quiet_samples(record, record.finished) >= QUIET_SAMPLES, 30)
    say(f"settled; footprint sampled ({json.dumps(_quiet_samples(record, record.finished))} quiet)")
