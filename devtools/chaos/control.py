"""The controller's tick: restart the supervisor as systemd would, follow every fault under way
(detected? cause lifted? repaired? past its deadline?), and start the planned faults that are
due and whose target or scope is free."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TextIO

from devtools.chaos.daemon import SupervisorProcess
from devtools.chaos.inject import Injector, Skip
from devtools.chaos.judge import Batch, Now, is_repaired, sign_of_detection
from devtools.chaos.observe import Feed
from devtools.chaos.plan import SPECS, Kind, Planned, Scope
from devtools.chaos.record import Fault, Record
from devtools.chaos.settings import BACKOFF_S, MAX_ATTEMPTS, Settings

TICK_S = 0.1
# When a crash loop's attempts come after it began: the backoffs add up (0, 2, 7, 12 s).
CRASH_LOOP_ATTEMPTS_S = tuple(
    accumulate(BACKOFF_S[i] if i < len(BACKOFF_S) else BACKOFF_S[-1] for i in range(MAX_ATTEMPTS))
)
START_TIMEOUT_S = 30.0  # the unit's TimeoutStartSec
SETTLE_AFTER_S = 2.0  # a target rests this long after one fault before the next
EXIT_CONFIG = 78


def key(planned: Planned) -> str:
    """What a fault occupies: its target, or its scope."""
    scope = SPECS[planned.kind].scope
    return (planned.target or "") if scope is Scope.TARGET else scope.value


class Say:
    """Progress lines on stderr, with the run's clock."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._t0 = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self._t0:7.1f}s] {text}", file=self._stream, flush=True)


@dataclass
class Controller:
    """Runs the faults of a plan against the supervisor; `tick` is called every TICK_S."""

    settings: Settings
    record: Record
    feed: Feed
    sup: SupervisorProcess
    injector: Injector
    say: Say
    pending: list[Fault] = field(default_factory=list)  # planned, not started yet
    active: list[Fault] = field(default_factory=list)
    stopping: bool = False  # the run is ending: the supervisor is not restarted any more
    holding: bool = False  # a lull: no new fault starts
    quiet: bool = False  # nothing under way, nothing waiting: a footprint sample counts
    phase_start: float = 0.0  # when the plan's times start counting
    _rested: dict[str, float] = field(default_factory=dict)  # key -> when its last fault ended
    _told: set[int] = field(default_factory=set)  # lives whose own exit was reported
    paused_s: float = 0.0  # how long, in all, /health has said the breaker paused probes
    _paused_at_start: dict[int, float] = field(default_factory=dict)  # fault -> paused_s

    # --- the tick ---------------------------------------------------------------------------

    def tick(self) -> None:
        """One look at everything, then the faults that are due."""
        now = time.time()
        self._care_for_supervisor(now)
        # The present first, then what arrived: whatever the present shows (a new MainPID,
        # a health document) has been fed before it, so the batch holds its signs too.
        present = self._present(now)
        batch = Batch(*self.feed.drain())
        if present.health is not None and "breaker open" in present.health.notes:
            self.paused_s += TICK_S  # probes paused by design: deadlines wait that long too
        for fault in list(self.active):
            self._follow(fault, batch, present)
        self._start_due(now)
        self.quiet = not self.active and present.outbox == 0 and present.supervisor_pid != 0

    def _present(self, now: float) -> Now:
        life = self.sup.life
        pid = life.pid if life is not None and self.sup.ready() else 0
        with self.feed.lock:
            feed = self.feed
            return Now(
                now,
                feed.latest,
                dict(feed.main_pid),
                dict(feed.main_started),
                pid,
                feed.outbox,
                feed.outbox_since,
            )

    # --- the supervisor, as systemd would run it --------------------------------------------

    def _care_for_supervisor(self, now: float) -> None:
        life = self.sup.life
        if life is None:
            return
        code = self.sup.exit_code()
        if code is not None:
            self._restart(now, code)
            return
        if life.ready is None and now - life.spawned > START_TIMEOUT_S:
            self._error(f"supervisor life {life.n}: no READY=1 within {START_TIMEOUT_S:g} s")
            self.sup.signal(signal.SIGKILL, "SIGKILL: no READY=1 (TimeoutStartSec)")
        elif self.sup.watchdog_late(now) > 0:
            self._error(
                f"supervisor life {life.n}: no WATCHDOG=1 for {self.sup.unit.watchdog_s:g} s"
            )
            self.sup.signal(signal.SIGABRT, "SIGABRT: watchdog timeout")

    def _restart(self, now: float, code: int) -> None:
        life = self.sup.life
        assert life is not None and life.exited is not None
        if not life.killed and life.n not in self._told:
            self._told.add(life.n)
            self._error(f"supervisor life {life.n} exited by itself with status {code}")
        if self.stopping or code == EXIT_CONFIG:
            return  # systemd would not restart exit 78 (RestartPreventExitStatus)
        if now >= life.exited + self.sup.unit.restart_s:
            new = self.sup.spawn()
            self.say(f"supervisor restarted (life {new.n}, pid {new.pid})")

    def _error(self, text: str) -> None:
        self.record.errors.append(text)
        self.say(f"ERROR: {text}")

    # --- faults under way -------------------------------------------------------------------

    def _follow(self, fault: Fault, batch: Batch, present: Now) -> None:
        spec = SPECS[fault.kind]
        if fault.detected is None and spec.detect:
            fault.detected = sign_of_detection(fault, batch)
        self.injector.lift(fault, present.at)
        if spec.repair:
            gone = self.injector.cause_gone(fault)
            if fault.repaired is None and is_repaired(fault, present, gone):
                fault.repaired = present.at
                self._end(fault, "repaired")
                return
        elif fault.lifted is not None and (fault.detected is not None or not spec.detect):
            self._end(fault, "over")
            return
        since = fault.lifted if fault.lifted is not None else fault.start
        assert since is not None
        paused = self.paused_s - self._paused_at_start.get(fault.plan.n, 0.0)
        if present.at > since + self.settings.repair_cap_s + paused:
            self.injector.clean(fault)
            fault.notes.append(f"not over within {self.settings.repair_cap_s:g} s: cleaned up")
            self._end(fault, "cleaned up")

    def _end(self, fault: Fault, how: str) -> None:
        fault.ended = time.time()
        self.injector.forget(fault)
        self.active.remove(fault)
        self._rested[key(fault.plan)] = fault.ended
        took = fault.ended - (fault.start or fault.ended)
        self.say(f"fault {fault.plan.n} {fault.kind} {fault.target or ''}: {how} ({took:.1f} s)")

    # --- starting what is due ---------------------------------------------------------------

    def _start_due(self, now: float) -> None:
        if self.holding:
            return
        busy = {key(f.plan) for f in self.active}
        for fault in list(self.pending):
            k = key(fault.plan)
            if k in busy:
                continue
            busy.add(k)  # later faults of this key wait for this one: the plan's order holds
            due = self.phase_start + fault.plan.at_s
            if now < due:
                continue
            # A fault waits for its target from when it is due or, when the fault before it on
            # the same target ended later, from then: a long repair of one is not the next's.
            waits_from = max(due, self._rested.get(k, 0.0))
            if now > waits_from + self.settings.start_wait_s:
                self._skip(fault, f"{k} was not free within {self.settings.start_wait_s:g} s")
            elif self._free(fault.plan, now):
                self.start(fault)

    def _free(self, planned: Planned, now: float) -> bool:
        if now < self._rested.get(key(planned), 0.0) + SETTLE_AFTER_S:
            return False
        scope = SPECS[planned.kind].scope
        if scope is Scope.TARGET:
            target = planned.target or ""
            window = self.settings.recovery_window_s
            fits = within_budget(self.record.faults, planned.kind, target, now, window)
            return fits and self._target_healthy(target)
        if planned.kind is Kind.TELEGRAM_429:
            return self.injector.bot.pending_429() == 0
        return scope is Scope.TELEGRAM or self.sup.ready()

    def _target_healthy(self, target: str) -> bool:
        with self.feed.lock:
            latest, pid = self.feed.latest, self.feed.main_pid.get(target, 0)
        return latest is not None and latest.statuses.get(target) == "pass" and pid != 0

    def start(self, fault: Fault) -> None:
        """Inject `fault` now (or record why it could not be)."""
        self.pending.remove(fault)
        try:
            self.injector.start(fault)
        except Exception as exc:  # a fault the run could not make must not end the run
            self.injector.forget(fault)
            fault.start = fault.lifted = None
            if not isinstance(exc, Skip):
                self._error(f"injecting fault {fault.plan.n} ({fault.kind}) failed: {exc!r}")
            self._skip(fault, str(exc), listed=True)
            return
        self.active.append(fault)
        self._paused_at_start[fault.plan.n] = self.paused_s
        self.say(f"fault {fault.plan.n} {fault.kind} {fault.target or ''} injected")

    def _skip(self, fault: Fault, why: str, listed: bool = False) -> None:
        if not listed:
            self.pending.remove(fault)
        fault.skipped = why
        self._rested[key(fault.plan)] = time.time()
        self.say(f"fault {fault.plan.n} {fault.kind} skipped: {why}")


def within_budget(
    faults: list[Fault], kind: Kind, target: str, now: float, window_s: float
) -> bool:
    """True when a fault of `kind` on `target` stays inside its recovery budget
    (`MAX_ATTEMPTS` in `window_s`), counting the faults this run started on it.

    A failure beyond the budget is given up on and retried only after
    ``retry_after_give_up_s``: the supervisor's design, which the crash loop exists to show.
    Stacked on a target by chance, ordinary faults would show it too, and their repair would
    wait out that retry (a SIGSTOP "repaired in 27 s" that was a 20 s wait by design). So a
    fault waits until its own failure is at most the budget's last attempt. A crash loop
    counts its attempts when it made them (`CRASH_LOOP_ATTEMPTS_S` after it began) and the
    retry that ended it; it waits for the whole budget, so that it is given up on after
    every attempt.
    """
    recent = 0
    for fault in faults:
        if fault.target != target or fault.start is None:
            continue
        if fault.kind is Kind.CRASH_LOOP:
            if fault.ended is None:
                return False
            tries = [fault.start + offset for offset in CRASH_LOOP_ATTEMPTS_S]
            recent += sum(now - at < window_s for at in [*tries, fault.ended])
        elif now - fault.start < window_s:
            recent += 1
    return recent < (1 if kind is Kind.CRASH_LOOP else MAX_ATTEMPTS)
