"""A typed front end over systemd's user manager: what its calls and signals mean.

Callers see `UnitState`, `JobResult` and our own errors, never library types; the wire (the
connection, each call's deadline, the library's errors as ours) is `bus.py`. State is event-driven:
we `Subscribe()`, match `PropertiesChanged` from systemd only, and re-read everything with
`GetAll` after every (re)connect because signals may have been missed while away.

"From systemd only" means from the unique name that owns `org.freedesktop.systemd1` now:
a `daemon-reexec` (Debian's systemd upgrades run it) hands the name to a new connection, so
we follow `NameOwnerChanged`, take the new owner's name, subscribe again and re-read all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import replace
from typing import Any, Protocol

from supervisor.errors import AlreadySubscribedError, BusError
from supervisor.happenings import JobResult, job_result
from supervisor.model import UnitResources, UnitState
from supervisor.watch.bus import (
    BUS_DAEMON,
    JOB,
    MANAGER,
    PROPERTIES,
    SERVICE,
    SYSTEMD,
    UNIT,
    UNIT_PATHS,
    Bus,
    Signal,
)
from supervisor.watch.cause import ExitFacts, facts_from
from supervisor.watch.jobs import UNKNOWN as UNKNOWN_JOB
from supervisor.watch.jobs import JobBook
from supervisor.watch.units import FIELDS, bus_address, merge, u64

log = logging.getLogger(__name__)
# bus_address: its home is watch.units; UNIT (the interface): watch.bus.
__all__ = ["UNIT", "Listener", "Systemd", "bus_address"]


class Listener(Protocol):
    """Who hears about units; called from the bus reader, so it must be quick."""

    def unit_changed(self, state: UnitState) -> None:
        """A watched unit's state changed (or was re-read)."""

    def bus_lost(self, reason: str) -> None:
        """The bus went away; all unit states are now unknown."""


class Systemd:
    """The user manager's units, watched and acted on over D-Bus."""

    def __init__(self, address: str, units: Iterable[str], call_timeout_s: float = 5.0) -> None:
        self._units = list(units)
        self._bus = Bus(address, call_timeout_s)
        self._owner = ""  # systemd's unique bus name: signals from anyone else are ignored
        self._paths: dict[str, str] = {}  # object path -> unit name
        self._states: dict[str, UnitState] = {}
        self._listener: Listener | None = None
        self._jobs: dict[str, asyncio.Future[str]] = {}  # job path -> result
        self._early: dict[str, str] = {}  # JobRemoved seen before our call returned
        self._book = JobBook()  # whose job is it: ours, systemd's, or an operator's
        self._background: set[asyncio.Task[None]] = set()  # held: the loop keeps weak refs

    @property
    def connected(self) -> bool:
        """True while the bus connection is up."""
        return self._bus.connected

    @property
    def owner(self) -> str:
        """The unique bus name systemd answers under (it changes with daemon-reexec)."""
        return self._owner

    def watch(self, units: Iterable[str]) -> None:
        """Change the watched units (reload); call refresh_all() to read new ones."""
        self._units = list(units)
        keep = set(self._units)
        for path, unit in list(self._paths.items()):
            if unit not in keep:
                del self._paths[path]
                self._states.pop(unit, None)

    def known_states(self) -> list[UnitState]:
        """The last state of every watched unit read so far."""
        return [self._states[u] for u in self._units if u in self._states]

    def state(self, unit: str) -> UnitState | None:
        """The last known state of a watched unit."""
        return self._states.get(unit)

    async def connect(self, listener: Listener) -> None:
        """Connect, subscribe, and read every watched unit; listener hears each state."""
        self._listener = listener
        await self._bus.connect(self._on_signal)
        try:
            await self._subscribe()
            await self.refresh_all()
        except BusError:
            self.close()
            raise

    async def _subscribe(self) -> None:
        rule = (
            f"type='signal',sender='{SYSTEMD}',interface='{PROPERTIES}',"
            f"member='PropertiesChanged',path_namespace='{UNIT_PATHS}'"
        )
        await self._bus.add_match(rule)
        await self._bus.add_match(f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}'")
        owner_rule = (
            f"type='signal',sender='{BUS_DAEMON}',interface='{BUS_DAEMON}',"
            f"member='NameOwnerChanged',arg0='{SYSTEMD}'"
        )
        await self._bus.add_match(owner_rule)
        self._owner = await self._bus.name_owner(SYSTEMD)
        await self._manager_subscribe()

    async def _manager_subscribe(self) -> None:
        # Without Subscribe() systemd only emits signals while some client is subscribed.
        try:
            await self._bus.manager("Subscribe", "")
        except BusError as exc:
            # A re-executed manager keeps its subscribers: it says so, and that is fine.
            if not isinstance(exc, AlreadySubscribedError):
                raise

    async def _follow_owner(self, owner: str) -> None:
        """systemd took its name again under a new unique name (daemon-reexec): catch up."""
        log.warning("systemd re-executed: following its new bus name %s", owner)
        try:
            await self._manager_subscribe()
            await self.refresh_all()
        except BusError as exc:
            log.warning("catching up with the re-executed systemd failed: %s", exc)

    async def refresh_all(self) -> None:
        """Re-read every watched unit (after connect, reload, or a missed signal)."""
        for unit in self._units:
            await self.refresh(unit)

    async def refresh(self, unit: str) -> UnitState:
        """Read one unit with GetAll and tell the listener."""
        state = await self._read(unit)
        self._publish(state)
        return state

    async def _read(self, unit: str) -> UnitState:
        path = await self._unit_path(unit)
        props = await self._bus.get_all(path, UNIT)
        if unit.endswith(".service") and props.get("LoadState") == "loaded":
            props.update(await self._bus.get_all(path, SERVICE))
        return merge(UnitState(unit=unit, operator_job=self._book.pending(unit)), props)

    async def get_properties(
        self, unit: str, interface: str, names: Iterable[str]
    ) -> dict[str, Any]:
        """Read a few properties (e.g. MemoryCurrent, which emits no change signal)."""
        return await self._bus.get(await self._unit_path(unit), interface, names)

    async def resources(self, unit: str) -> UnitResources:
        """The unit's cgroup figures, polled (they emit no change signals)."""
        props = await self.get_properties(
            unit, SERVICE, ("MemoryCurrent", "CPUUsageNSec", "ControlGroup")
        )
        return UnitResources(
            memory_bytes=u64(props["MemoryCurrent"]),
            cpu_nsec=u64(props["CPUUsageNSec"]),
            control_group=str(props["ControlGroup"]),
        )

    async def exit_facts(self, unit: str) -> ExitFacts:
        """What systemd says about the run that just ended (read at once when it dies)."""
        path = await self._unit_path(unit)
        about = await self._bus.get_all(path, UNIT)
        return facts_from(unit, about, await self._bus.get_all(path, SERVICE))

    async def _unit_path(self, unit: str) -> str:
        for path, name in self._paths.items():
            if name == unit:
                return path
        # LoadUnit (not GetUnit) so a unit that is not loaded, or not found, still has a
        # path whose LoadState says so: "not found" is a state to report, not an exception.
        reply = await self._bus.manager("LoadUnit", "s", unit)
        path = str(reply[0])
        self._paths[path] = unit
        return path

    def _publish(self, state: UnitState) -> None:
        if self._states.get(state.unit) == state:
            return
        self._states[state.unit] = state
        if self._listener is not None:
            self._listener.unit_changed(state)

    def _on_signal(self, msg: Signal) -> None:
        if msg.sender == BUS_DAEMON and msg.member == "NameOwnerChanged":
            self._owner_changed(msg.body)
            return
        if msg.sender != self._owner:
            return
        if msg.member == "PropertiesChanged" and msg.path in self._paths:
            self._on_properties(self._paths[msg.path], msg.body)
        elif msg.member == "JobNew" and len(msg.body) == 3:
            self._job_new(str(msg.body[1]), str(msg.body[2]))
        elif msg.member == "JobRemoved" and len(msg.body) == 4:
            self._job_removed(str(msg.body[1]), str(msg.body[3]))
            self._foreign_removed(str(msg.body[1]))
        elif msg.member == "Reloading" and msg.body and msg.body[0] is False:
            # A daemon-reload may have created or changed unit files: read everything again.
            self._spawn(self._refresh_quietly())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _owner_changed(self, body: list[Any]) -> None:
        if len(body) != 3 or body[0] != SYSTEMD:
            return
        new = str(body[2])
        if not new:  # systemd left the bus (mid re-exec): it takes the name again soon
            log.info("systemd released its bus name; waiting for it to come back")
            return
        if new != self._owner:
            self._owner = new
            self._spawn(self._follow_owner(new))

    def _on_properties(self, unit: str, body: list[Any]) -> None:
        interface, changed, invalidated = body
        if interface not in (UNIT, SERVICE):
            return
        current = self._states.get(unit, UnitState(unit=unit))
        self._publish(merge(current, changed))
        if any(name in FIELDS for name in invalidated):
            self._spawn(self._refresh_quietly(unit))

    # -- jobs someone else asked for (systemctl stop/restart/start): see watch.jobs --------

    def _job_new(self, path: str, unit: str) -> None:
        if unit not in self._units:
            return
        state = self._states.get(unit, UnitState(unit=unit))
        if self._book.new(path, state):
            self._publish(replace(state, operator_job=state.operator_job or UNKNOWN_JOB))
            self._spawn(self._read_job_type(path))

    async def _read_job_type(self, path: str) -> None:
        try:
            job_type = (await self._bus.get(path, JOB, ("JobType",)))["JobType"]
        except BusError:
            return  # the job ended first: it stays "unknown"
        unit = self._book.typed(path, str(job_type))
        state = self._states.get(unit or "")
        if unit is not None and state is not None:
            self._publish(replace(state, operator_job=self._book.pending(unit)))

    def _foreign_removed(self, path: str) -> None:
        entry = self._book.removed(path)
        if entry is not None:
            self._spawn(self._settle(*entry))

    async def _settle(self, unit: str, job_type: str) -> None:
        # systemd sends a unit's pending PropertiesChanged before JobRemoved; a re-read still
        # makes sure the settled state is judged while we know whose job it was.
        state = self._states.get(unit)
        try:
            state = await self._read(unit)
        except BusError as exc:
            log.warning("re-reading %s after an operator's job failed: %s", unit, exc)
        newer = self._book.pending(unit)  # a job queued since (a start after the stop)
        if state is not None and newer is None:
            self._publish(replace(state, operator_job=job_type))
        if state is not None:
            self._publish(replace(state, operator_job=newer))

    def _job_removed(self, path: str, result: str) -> None:
        waiter = self._jobs.pop(path, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(result)
        else:  # maybe ours, its reply still in flight; bounded: others' jobs pile up here
            if len(self._early) >= 256:
                self._early.pop(next(iter(self._early)))
            self._early[path] = result

    async def restart(self, unit: str, timeout_s: float) -> JobResult:
        """RestartUnit(mode=replace) and wait for the job's result (DONE, FAILED, ...)."""
        return await self._job("RestartUnit", unit, timeout_s)

    async def reset_and_start(self, unit: str, timeout_s: float) -> JobResult:
        """ResetFailedUnit (clears a start-limit-hit), then StartUnit and wait for the job."""
        await self._bus.manager("ResetFailedUnit", "s", unit)
        return await self._job("StartUnit", unit, timeout_s)

    async def _job(self, method: str, unit: str, timeout_s: float) -> JobResult:
        # The JobRemoved match was added at connect, before this call: a job that ends
        # before the reply reaches us is caught in _early rather than lost.
        self._book.calling(unit)
        path = None
        try:
            path = str((await self._bus.manager(method, "ss", unit, "replace"))[0])
        finally:
            if self._book.called(unit, path) and (state := self._states.get(unit)):
                self._publish(replace(state, operator_job=self._book.pending(unit)))
        if path in self._early:
            return job_result(self._early.pop(path))
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._jobs[path] = waiter
        try:
            async with asyncio.timeout(timeout_s):
                return job_result(await waiter)
        except TimeoutError:
            return JobResult.TIMEOUT
        finally:
            self._jobs.pop(path, None)

    async def _refresh_quietly(self, unit: str | None = None) -> None:
        try:
            await (self.refresh(unit) if unit else self.refresh_all())
        except BusError as exc:
            log.warning("re-reading %s failed: %s", unit or "all units", exc)

    async def wait_closed(self) -> str:
        """Wait until the bus connection ends; return why, in words."""
        return await self._bus.wait_closed()

    def close(self) -> None:
        """Drop the connection (idempotent); state is forgotten so a reconnect re-reads it."""
        for task in self._background:
            task.cancel()
        for waiter in self._jobs.values():
            if not waiter.done():
                waiter.set_exception(BusError("bus connection lost while waiting for the job"))
        self._jobs.clear()
        self._book.clear()
        self._paths.clear()
        self._states.clear()
        self._bus.close()
