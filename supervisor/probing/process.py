"""Running a command for a check or a cure: its own process group, killed whole at the end.

A command gets an argument list (no shell unless it names one), a minimal environment (the
supervisor's own, with its secrets, is never passed on), a working directory, a hard
timeout and capped output. It runs in a new session, so its process group can be killed
whole: at the timeout, and also after it exits, so a check never leaves a child behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.config import ExecProbe
from supervisor.model import Status
from supervisor.probing import nagios
from supervisor.probing.outcome import OUR_ERRNOS, Outcome

# The logger keeps the name it had before the module was renamed: journal filters read it.
log = logging.getLogger("supervisor.probing.command")

PATH = "/usr/local/bin:/usr/bin:/bin"
# Passed on from our environment when set: who and where we are, never a secret.
PASSED_ON = ("HOME", "USER", "LOGNAME", "TZ", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")
_CHUNK = 64 * 1024
_DRAIN_S = 0.5  # after the command exits, how long its output may take to arrive


@dataclass(frozen=True, slots=True)
class Completed:
    """How a command ended and what it printed (each stream capped)."""

    exit_code: int | None  # None: killed at the timeout (or, rarely, not reaped in time)
    stdout: str
    stderr: str
    truncated: bool = False
    timed_out: bool = False


def minimal_env(extra: Mapping[str, str], ours: Mapping[str, str]) -> dict[str, str]:
    """PATH, a C.UTF-8 locale (plugins print 1.5, not 1,5), who we are, then `extra`."""
    env = {"PATH": PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update({k: ours[k] for k in PASSED_ON if k in ours})
    env.update(extra)
    return env


async def run_command(
    argv: list[str], *, env: Mapping[str, str], cwd: Path, timeout_s: float, max_bytes: int
) -> Completed:
    """Run `argv`, return how it ended; OSError if it cannot be started at all."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,  # its own process group, so it is killed whole
    )
    assert proc.stdout is not None and proc.stderr is not None
    readers = [asyncio.create_task(_read(s, max_bytes)) for s in (proc.stdout, proc.stderr)]
    exited, unwatch = _watch_exit(proc.pid)
    timed_out = False
    try:
        async with asyncio.timeout(timeout_s):
            await exited.wait()
            # A child it left behind may still hold the pipes: give them a moment, no more.
            await asyncio.wait(readers, timeout=_DRAIN_S)
    except TimeoutError:
        timed_out = True
        log.warning("%s still running after %.1f s: killing its process group", argv[0], timeout_s)
    finally:
        # Also on cancellation (the probe's own timeout): nothing of it may outlive it.
        unwatch()
        kill_group(proc.pid)
        await _settle(proc, readers)
    (out, cut_out), (err, cut_err) = (_result(r) for r in readers)
    code = None if timed_out else proc.returncode
    return Completed(code, out, err, cut_out or cut_err, timed_out)


def _watch_exit(pid: int) -> tuple[asyncio.Event, Callable[[], None]]:
    """An event set when `pid` exits (a pidfd turns readable), and how to stop watching.

    asyncio's own `Process.wait()` (3.11) returns only once the pipes close too, which a
    child left behind can delay until the timeout.
    """
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:  # already exited and reaped
        exited.set()
        return exited, lambda: None

    def on_exit() -> None:
        loop.remove_reader(fd)  # a pidfd stays readable: once is enough
        exited.set()

    loop.add_reader(fd, on_exit)

    def unwatch() -> None:
        loop.remove_reader(fd)
        os.close(fd)

    return exited, unwatch


async def _settle(proc: asyncio.subprocess.Process, readers: list[asyncio.Task[Any]]) -> None:
    """Reap the leader and finish reading, each for a moment at most, then stop reading."""
    waiter = asyncio.ensure_future(proc.wait())
    await asyncio.wait([waiter, *readers], timeout=_DRAIN_S)
    # Only a process that left our group (setsid) can still hold the pipes now.
    for task in (waiter, *readers):
        task.cancel()


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in the group (it may already be empty)."""
    # The leader's PID names the group while any member lives; an empty group is ESRCH.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _read(stream: asyncio.StreamReader, max_bytes: int) -> tuple[bytes, bool]:
    """Everything until EOF, keeping the first `max_bytes` (the rest is read and dropped)."""
    kept = bytearray()
    cut = False
    while chunk := await stream.read(_CHUNK):
        room = max_bytes - len(kept)
        kept += chunk[: max(room, 0)]
        cut = cut or len(chunk) > room
    return bytes(kept), cut


def _result(task: asyncio.Task[tuple[bytes, bool]]) -> tuple[str, bool]:
    if not task.done() or task.cancelled() or task.exception() is not None:
        return "", False
    data, cut = task.result()
    return data.decode("utf-8", errors="replace"), cut


class ExecCheck:
    """A command following the Nagios plugin API (exit 0 pass, 1 warn, 2 fail, 3 unknown)."""

    kind = "exec"

    def __init__(self, spec: ExecProbe, ours: Mapping[str, str]) -> None:
        self._spec = spec
        self._env = minimal_env(spec.env, ours)

    async def check(self) -> Outcome:
        """Run the command once and read its verdict."""
        spec = self._spec
        try:
            done = await run_command(
                spec.command,
                env=self._env,
                cwd=spec.cwd,
                timeout_s=spec.timeout_s,
                max_bytes=spec.output_max_bytes,
            )
        except OSError as exc:
            return cannot_run(spec.command[0], exc)
        if done.timed_out:
            return Outcome(Status.FAIL, f"exec: timeout after {spec.timeout_s:.1f} s")
        if done.exit_code is None:
            return Outcome(Status.UNKNOWN, f"exec: {spec.command[0]} exited, status not known")
        said = nagios.parse(done.exit_code, done.stdout)
        reason = said.reason or _first_line(done.stderr) or f"exit {done.exit_code}, no output"
        if said.status is Status.UNKNOWN and done.exit_code != 3:
            reason = f"{reason} (exit {done.exit_code}: unknown)"
        return Outcome(said.status, reason, perfdata=said.perfdata)


def cannot_run(program: str, exc: OSError) -> Outcome:
    """A command that could not start: unknown, never a failure of the target."""
    where = f" in {exc.filename}" if exc.filename and exc.filename != program else ""
    why = exc.strerror or str(exc)
    if exc.errno in OUR_ERRNOS:
        return Outcome(Status.UNKNOWN, f"exec: cannot start {program}: {why} (our own limit)")
    return Outcome(Status.UNKNOWN, f"exec: cannot run {program}: {why}{where}")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
