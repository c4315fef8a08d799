"""A fake systemd user manager on a private bus, built from dbus-fast `ServiceInterface`s.

`FakeSystemd(address)` connects to a bus (see `tests.fakes.dbus_daemon.BusDaemon`), takes the
well-known name `org.freedesktop.systemd1` and serves, as systemd 252 does:

* `org.freedesktop.systemd1.Manager` on `/org/freedesktop/systemd1`: Subscribe, Unsubscribe
  (`AlreadySubscribed`/`NotSubscribed` errors included), LoadUnit (an unknown name gives a
  unit whose LoadState is `not-found`), GetUnit (`NoSuchUnit` unless loaded), StartUnit,
  StopUnit, RestartUnit (job mode checked; `NoSuchUnit` for a unit that is not found,
  `UnitMasked` for a masked one), ResetFailedUnit, Reload; the signals UnitNew, UnitRemoved,
  JobNew, JobRemoved and Reloading.
* a unit object per unit at systemd's escaped path (`.../unit/trader_2eservice`) with the
  `org.freedesktop.systemd1.Unit` interface (and `...Service` for `.service` units), read
  through the real `org.freedesktop.DBus.Properties` Get/GetAll. A change sends
  `PropertiesChanged` the way systemd does: the Service interface first, then Unit, each
  carrying every property that emits changes (not just the ones that changed).
  `MemoryCurrent`, `CPUUsageNSec` and `ControlGroup` emit nothing: callers must poll.
* unit signals and Reloading only while some client is subscribed (a client that leaves the
  bus is unsubscribed); job signals also go out for the job's own requester.
* jobs: the method replies with the job path, then the job runs in the background and
  walks the unit through its states (a restart: deactivating, inactive, activating, then
  active with a new MainPID, or failed), and ends with JobRemoved carrying the unit's
  `job_result` ("done", "failed", "timeout", ...).

What a test can do to it: read `calls` (every method call received, Properties included) and
wait on them (`wait_call`, or the per-member `asyncio.Event`s in `called`); make the next
call(s) of a member fail with any D-Bus error (`fail`) or never be answered (`hang`); hold
jobs before they finish (`hold_jobs`/`release_jobs`); finish jobs before the reply leaves
(`jobs_finish_before_reply`); change units with or without signals (`set_unit`); emit any
signal on demand (`emit_*`); and re-execute (`reexec`): the connection that owns the name
leaves the bus and a new connection, with a new unique name, takes the name over, as after
`systemctl --user daemon-reexec`. Subscriptions survive a re-exec, as systemd serializes them.

What it does not fake: the Job objects at job paths, unit files and dependencies, queued
jobs merging (every call makes a new job), the start rate limit, properties other than those
in the tables of `systemd_model`, PolicyKit, the private socket `systemctl` uses, and the
time a real unit takes: jobs finish as soon as the event loop lets them. MainPID is a made-up
number, never a real process.

The pieces: `systemd_model` (names, property tables, units, jobs: no bus), `systemd_objects`
(the dbus-fast interfaces exported on the bus), `bus_calls` (call recording and faults).
"""

import asyncio
import itertools
from collections.abc import Iterable
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.errors import DBusError

from tests.fakes.bus_calls import CallRecorder
from tests.fakes.systemd_model import (
    ALREADY_SUBSCRIBED,
    DBUS,
    INVALID_ARGS,
    JOB_MODES,
    JOB_PATHS,
    NO_SUCH_UNIT,
    NOT_SUBSCRIBED,
    UNIT_MASKED,
    FakeJob,
    FakeUnit,
    check_names,
    emits,
    job_steps,
    new_unit_props,
    unit_path,
)
from tests.fakes.systemd_objects import Connection


class FakeSystemd(CallRecorder):
    """A fake systemd user manager on the bus at `address` (start() before use)."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.units: dict[str, FakeUnit] = {}
        self.jobs: list[FakeJob] = []
        self.subscribers: set[str] = set()
        self.jobs_finish_before_reply = False
        self._conn: Connection | None = None
        self._held: asyncio.Event | None = None
        self._job_made = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pids = itertools.count(4001)
        self._job_ids = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, take_name: bool = True) -> None:
        """Connect and take the name org.freedesktop.systemd1 (or, with take_name=False, stay
        on the bus under a unique name only: an impostor sending systemd's signals)."""
        self._conn = await Connection.open(self, take_name=take_name)

    async def close(self) -> None:
        """Cancel running jobs and leave the bus (idempotent)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def reexec(self) -> str:
        """As `systemctl daemon-reexec`: Reloading(true), this connection leaves the bus (the
        name goes with it), a new connection takes the name, Reloading(false). Units, jobs and
        subscriptions carry over. Returns the new unique name."""
        old = self._require()
        self._reloading(True)
        self._conn = None
        await old.close()
        self._conn = await Connection.open(self, take_name=True)
        self._reloading(False)
        return self.unique_name

    @property
    def unique_name(self) -> str:
        """The unique bus name of the connection that now owns org.freedesktop.systemd1."""
        name = self._require().bus.unique_name
        assert name is not None
        return name

    def _require(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the fake systemd is not on the bus (start() it)")
        return self._conn

    # -- units -------------------------------------------------------------------------------

    def add_unit(
        self,
        name: str,
        *,
        active: str = "active",
        sub: str | None = None,
        load: str = "loaded",
        **props: Any,
    ) -> FakeUnit:
        """Define a unit (before or after start); other properties by their D-Bus names."""
        if name in self.units:
            raise ValueError(f"{name} already exists")
        check_names(props)
        unit = FakeUnit(name, new_unit_props(name, active, sub, load, self._pids) | props)
        self.units[name] = unit
        if self._conn is not None:
            self._conn.export(unit)
            if self.subscribers:
                self._conn.manager.unit_new(name, unit.path)
        return unit

    def unit(self, name: str) -> FakeUnit:
        """A unit by name (KeyError if it was never defined or loaded)."""
        return self.units[name]

    def set_unit(self, name: str, *, quiet: bool = False, **props: Any) -> None:
        """Change a unit as systemd would, and say so in PropertiesChanged (unless `quiet`:
        a change nobody signalled, found only by reading again)."""
        check_names(props)
        unit = self.units[name]
        changed = unit.apply(props)
        if not quiet and any(emits(k) for k in changed) and self.subscribers:
            self._send_changed(unit)

    def _send_changed(self, unit: FakeUnit) -> None:
        conn = self._conn
        if conn is None:
            return  # between two connections (re-exec): nobody can send
        conn.send_changed(unit)

    def _load(self, name: str) -> FakeUnit:
        unit = self.units.get(name)
        if unit is None:  # LoadUnit of a unit with no file: an object saying "not-found"
            unit = self.add_unit(name, active="inactive", load="not-found")
        return unit

    # -- calls -------------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> bool | None:
        if msg.message_type is MessageType.SIGNAL:
            if msg.member == "NameOwnerChanged" and msg.sender == DBUS and not msg.body[2]:
                self.subscribers.discard(str(msg.body[0]))
            return None
        return self._on_call(msg)

    # -- manager -----------------------------------------------------------------------------

    def _subscribe(self) -> None:
        if self._sender in self.subscribers:
            raise DBusError(ALREADY_SUBSCRIBED, "Client is already subscribed.")
        self.subscribers.add(self._sender)

    def _unsubscribe(self) -> None:
        if self._sender not in self.subscribers:
            raise DBusError(NOT_SUBSCRIBED, "Client is not subscribed.")
        self.subscribers.discard(self._sender)

    def _reloading(self, active: bool) -> None:
        if self.subscribers and self._conn is not None:
            self._conn.manager.reloading(active)

    def _reset_failed(self, name: str) -> None:
        unit = self.units.get(name)
        if unit is None:
            raise DBusError(NO_SUCH_UNIT, f"Unit {name} not loaded.")
        if unit["ActiveState"] == "failed":
            self.set_unit(name, ActiveState="inactive", SubState="dead", Result="success")
        elif unit.is_service:
            unit.props["Result"] = "success"

    # -- jobs --------------------------------------------------------------------------------

    def hold_jobs(self) -> None:
        """Jobs started from now on stop just before their last step until release_jobs()."""
        if self._held is None:
            self._held = asyncio.Event()

    def release_jobs(self) -> None:
        """Let held jobs finish."""
        held, self._held = self._held, None
        if held is not None:
            held.set()

    async def wait_job(self, count: int = 1, timeout_s: float = 5.0) -> FakeJob:
        """Wait until the `count`-th job the fake made has finished; return it."""
        async with asyncio.timeout(timeout_s):
            while len(self.jobs) < count:
                self._job_made.clear()
                await self._job_made.wait()
            job = self.jobs[count - 1]
            await job.finished.wait()
        return job

    def _enqueue(self, kind: str, name: str, mode: str) -> str:
        if mode not in JOB_MODES:
            raise DBusError(INVALID_ARGS, f"Job mode {mode} invalid.")
        unit = self._load(name)
        if unit["LoadState"] == "not-found":
            raise DBusError(NO_SUCH_UNIT, f"Unit {name} not found.")
        if unit["LoadState"] == "masked":
            raise DBusError(UNIT_MASKED, f"Unit {name} is masked.")
        job = FakeJob(next(self._job_ids), kind, name, self._sender)
        steps = job_steps(job, unit, self._pids)
        job.result = unit.job_result if steps else "done"  # nothing to do is done at once
        self.jobs.append(job)
        self._job_made.set()
        if self.jobs_finish_before_reply:
            self._job_signal(job, new=True)
            for change in steps:
                self.set_unit(name, **change)
            self._end(job)
        else:
            task = asyncio.get_running_loop().create_task(self._run(job, steps))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return job.path

    async def _run(self, job: FakeJob, steps: list[dict[str, Any]]) -> None:
        # The reply with the job path has been sent already (the method returned), so, as on
        # systemd, JobNew and the unit's changes reach the caller after it.
        self._job_signal(job, new=True)
        for i, change in enumerate(steps):
            held = self._held
            if i == len(steps) - 1 and held is not None:
                await held.wait()
            self.set_unit(job.unit, **change)
        self._end(job)

    def _end(self, job: FakeJob) -> None:
        self._job_signal(job, new=False)
        job.finished.set()

    def _job_signal(self, job: FakeJob, *, new: bool) -> None:
        conn = self._conn
        # systemd sends job signals to subscribers, and to the job's requester in any case.
        if conn is None or not (self.subscribers or job.requester):
            return
        if new:
            conn.manager.job_new(job.id, job.path, job.unit)
        else:
            conn.manager.job_removed(job.id, job.path, job.unit, job.result)

    # -- signals on demand -------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until the bus has read everything sent so far (one round trip to it).

        Call it between bursts of signals: dbus-fast treats a full socket buffer (EAGAIN) as
        a lost connection (python-dbus-next issue 153, inherited), so a few hundred signals
        sent without yielding to the event loop can drop the fake off the bus.
        """
        reply = await self._require().bus.call(
            Message(destination=DBUS, path="/org/freedesktop/DBus", interface=DBUS, member="GetId")
        )
        assert reply is not None and reply.message_type is MessageType.METHOD_RETURN

    def emit_properties_changed(
        self,
        name: str,
        interface: str,
        changed: dict[str, Any],
        invalidated: Iterable[str] = (),
    ) -> None:
        """Send exactly this PropertiesChanged for a unit (its model is left alone)."""
        for obj in self._require().objects[name]:
            if obj.name == interface:
                obj.emit_properties_changed(changed, list(invalidated))
                return
        raise KeyError(f"{name} has no interface {interface}")

    def emit_reloading(self, active: bool) -> None:
        """Send Reloading(active), as around a daemon-reload."""
        self._require().manager.reloading(active)

    def emit_job_removed(self, job_id: int, unit: str, result: str) -> None:
        """Send a JobRemoved for any job id, real or not."""
        self._require().manager.job_removed(job_id, f"{JOB_PATHS}/{job_id}", unit, result)

    def emit_unit_new(self, name: str) -> None:
        """Send UnitNew for a unit."""
        self._require().manager.unit_new(name, unit_path(name))

    def emit_unit_removed(self, name: str) -> None:
        """Send UnitRemoved for a unit."""
        self._require().manager.unit_removed(name, unit_path(name))
