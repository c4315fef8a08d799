"""Why a unit died: read the moment systemd says so, kept for the alert, history and `why`.

The watch room's joiner for deaths. `unit_changed` (called from the bus reader) notices a
run that ended badly and starts one background read per death: systemd's exit facts, the
OOM kills in the unit's cgroup since the run began, and the run's last lines (journal or
output file). Nothing here blocks: a reader that hangs costs its deadline, never a target's
supervision, and trouble of ours (bus down, journal missing) is said in words, never a
failure of the target.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from supervisor.errors import BusError
from supervisor.happenings import Emit, UnitDied
from supervisor.model import ActiveState, Clock, UnitState
from supervisor.probing.resources import ProcReader
from supervisor.watch.cause import Cause, ExitFacts, LastWords, died, explain
from supervisor.watch.lastwords import LastWordsReader, Limits
from supervisor.watch.systemd import Systemd

log = logging.getLogger(__name__)

WAIT_S = 0.5  # the longest an alert waits for a death's cause and lines
_RUNNING = (ActiveState.ACTIVE, ActiveState.RELOADING)


@dataclass(frozen=True, slots=True)
class Death:
    """One run that ended badly: when, why, and its last words."""

    target: str
    unit: str
    at: float  # wall clock, when we saw it
    cause: Cause
    facts: ExitFacts
    log: LastWords

    def document(self) -> dict[str, Any]:
        """As JSON (the `cause` and `log` of /events, /history and `supervisor why`)."""
        return {
            "unit": self.unit,
            "at": self.at,
            "cause": self.cause.document(),
            "log": self.log.document(),
            "result": self.facts.result,
            "nRestarts": self.facts.n_restarts,
            "invocation": self.facts.invocation,
            "oomKills": self.facts.oom_kills,
        }

    def happening(self) -> UnitDied:
        """As the typed event the dispatcher carries to history and the journal."""
        return UnitDied(self.target, self.unit, self.cause.words, self.document())


@dataclass
class _Run:
    """What we know of a unit's current run."""

    running: bool = False
    oom_base: int | None = None  # the cgroup's cumulative OOM kills when the run began
    memory_bytes: int | None = None  # the last reading while it ran


class Autopsies:
    """Reads each death's cause and last lines in the background; keeps the latest."""

    def __init__(
        self,
        systemd: Systemd,
        *,
        reader: LastWordsReader,
        procs: ProcReader,
        clock: Clock,
        limits: Limits,
        emit: Emit,
    ) -> None:
        self._systemd = systemd
        self._reader = reader
        self._procs = procs
        self._clock = clock
        self._limits = limits
        self._emit = emit  # history and the journal hear of each death through it
        self._runs: dict[str, _Run] = {}
        self._latest: dict[str, Death] = {}
        self._pending: dict[str, asyncio.Task[Death]] = {}

    def use(self, limits: Limits) -> None:
        """Keep this much of each death's output from now on (a reload's [causes])."""
        self._limits = limits

    def unit_changed(self, target: str, state: UnitState) -> None:
        """A watched unit's new state (from the bus reader: quick, never blocks)."""
        run = self._runs.setdefault(target, _Run())
        if state.memory_bytes is not None:
            run.memory_bytes = state.memory_bytes
        if state.active_state in _RUNNING:
            if not run.running:  # a new run: count its OOM kills from here
                run.running = True
                run.oom_base = self._oom_kills(state)
            return
        if died(run.running, state.active_state.value, state.result):
            run.running = False
            self._start(target, state, run)
        elif state.active_state is ActiveState.INACTIVE and state.result == "success":
            run.running = False  # a clean stop: the next start is a new run

    def observe_memory(self, target: str, memory_bytes: float) -> None:
        """A memory reading taken while the target's unit ran (the resources probe's)."""
        run = self._runs.get(target)
        if run is not None and run.running:
            run.memory_bytes = int(memory_bytes)

    def latest(self, target: str) -> Death | None:
        """The target's last death, if one was seen since we started."""
        return self._latest.get(target)

    async def wait(self, target: str, timeout_s: float = WAIT_S) -> Death | None:
        """The death being read for `target`, waited for at most `timeout_s`; else the last."""
        task = self._pending.get(target)
        if task is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    return await asyncio.shield(task)
            except TimeoutError:
                log.info("%s: the cause of death was not read within %.1f s", target, timeout_s)
                return None
        return self._latest.get(target)

    def reading(self, target: str) -> bool:
        """True while a death of `target` is being read."""
        return target in self._pending

    def close(self) -> None:
        """Cancel reads in progress (shutdown)."""
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()

    def _start(self, target: str, state: UnitState, run: _Run) -> None:
        seen = ExitFacts(
            unit=state.unit,
            result=state.result,
            code=state.exit_code,
            status=state.exit_status,
            n_restarts=state.n_restarts,
            memory_bytes=run.memory_bytes,
        )
        task = asyncio.get_running_loop().create_task(self._read(target, state, seen, run.oom_base))
        self._pending[target] = task
        task.add_done_callback(lambda done: self._finished(target, done))

    def _finished(self, target: str, task: asyncio.Task[Death]) -> None:
        if self._pending.get(target) is task:
            del self._pending[target]
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:  # a bug of ours: logged, never a failure
            log.error("%s: reading the cause of death failed: %r", target, exc)
            return
        death = task.result()
        self._latest[target] = death
        self._emit(death.happening())

    async def _read(
        self, target: str, state: UnitState, seen: ExitFacts, oom_base: int | None
    ) -> Death:
        limits = self._limits
        facts = await self._facts(state, seen, oom_base)
        words = await self._reader.read(facts, limits)
        return Death(target, state.unit, self._clock.time(), explain(facts), facts, words)

    async def _facts(self, state: UnitState, seen: ExitFacts, oom_base: int | None) -> ExitFacts:
        try:
            read = await self._systemd.exit_facts(state.unit)
        except BusError as exc:
            log.info("%s: exit facts not read (%s); using the signal's", state.unit, exc)
            read = seen
        if read.code == 0 and seen.code:  # a new run already began: the signal's are the dead one's
            read = replace(read, result=seen.result, code=seen.code, status=seen.status)
        if read.memory_bytes is None:
            read = replace(read, memory_bytes=seen.memory_bytes)
        now = self._oom_kills(state)
        if oom_base is not None and now is not None:
            read = replace(read, oom_kills=max(0, now - oom_base))
        return read

    def _oom_kills(self, state: UnitState) -> int | None:
        # A few bytes from cgroupfs (no disk behind it): cheap enough for the bus reader.
        return self._procs.oom_kills(state.control_group) if state.control_group else None
