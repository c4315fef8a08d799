"""A throw-away systemd user manager running the demo trading fleet, for tests and demos.

``Sandbox(root).up()`` starts a real ``systemd --user`` with everything under `root`::

    root/run/                      XDG_RUNTIME_DIR (0700): systemd/private, bus (dbus.socket)
    root/home/                     HOME
    root/home/.config/             XDG_CONFIG_HOME; units in home/.config/systemd/user/
    root/home/trading/             heartbeat files and crash-on-start flags of the demo programs
    root/logs/<program>.log        stdout/stderr of each demo unit
    root/manager.log               stdout/stderr of the manager (nearly empty, see below)
    root/state.json                PIDs with /proc start times, cgroup base, what we created

then installs and starts ``trader.service``, ``dashboard.service`` and
``position-monitor.service`` (``python -m devtools.demo ...``, see `devtools.demo`) and
waits until each is active *and* observably working (fresh heartbeat, /health answering).
``down()`` stops it all and removes the files. ``python -m devtools.sandbox up|down|status|env``
does the same from a shell; ``eval "$(scripts/sandbox.sh env)"`` points ``systemctl --user``
and D-Bus clients at it.

How it copes with this kind of host (Debian 12, systemd 252, root, PID 1 not systemd, cgroup v1
hybrid; see DESIGN.md "Testing against the real thing"):

- ``systemd --user`` exits at once (silently) unless ``/run/systemd/system`` exists. We create
  it only when PID 1 is not systemd and it is missing, record that, and remove it on ``down``.
- The session bus is never started by hand: the manager's own ``dbus.socket`` takes
  ``$XDG_RUNTIME_DIR/bus`` and we poll until ``org.freedesktop.systemd1`` answers on it.
- The manager logs to the kernel ring buffer (``--log-target=kmsg``): as a user instance it
  sends ``console`` output to /dev/console, not to its stderr, and ``SYSTEMD_LOG_*`` variables
  would leak into every unit. Error messages about a failed start quote manager.log and the
  manager's kmsg lines.
- One sandbox per machine: on cgroup v1 the manager behaves as if it owned the cgroup root
  (its units land in /app.slice, /session.slice). ``up`` takes an exclusive ``flock`` on
  `LOCK_PATH` and writes its root into the file. systemd closes every inherited descriptor at
  start-up, so the lock descriptor is handed to a tiny ``sh`` that runs the manager as its
  child and waits for it: the lock is held exactly as long as the manager lives, even when
  ``up`` ran from a short-lived CLI.

Teardown safety: a process is only ever signalled through a pidfd, after checking that its PID
still has the start time we recorded (`ProcId`), so a reused PID is never hit. Besides the
recorded PIDs, ``down`` sweeps processes whose systemd cgroup lies under the manager's
app.slice, session.slice or background.slice (this catches units that outlived a SIGKILLed
manager), but only when all of these hold: we hold the machine lock (so no other sandbox's
manager can be using those cgroups), state.json recorded our manager's cgroup base (the
parent of its ``init.scope``), the process runs under our UID, started after our manager did,
and is neither PID 1 nor ourselves. A ``systemd --user`` started by hand *outside* this module
would share /app.slice on such a host: do not run one next to a sandbox.

Modules: `client` (the file layout, systemctl, the bus ping), `fleet` (the demo units, their
readiness and faults), `manager` (`Sandbox`: lock, start-up, teardown), `host` (preflight,
state file, unit-file quoting), `procs` (PIDs with start times, cgroups, the lock), `waiting`
(``up`` while another sandbox holds the machine).
"""

from devtools.sandbox.fleet import HEARTBEAT_FRESH_S, PROGRAMS, UNITS
from devtools.sandbox.host import Heartbeat
from devtools.sandbox.manager import DEFAULT_ROOT, Sandbox
from devtools.sandbox.procs import (
    LOCK_PATH,
    ProcId,
    SandboxError,
    SandboxFailed,
    SandboxUnavailable,
    lock_owner,
    send_signal,
    terminate,
    unit_cgroup_members,
    wait_for,
)

__all__ = [
    "DEFAULT_ROOT",
    "HEARTBEAT_FRESH_S",
    "LOCK_PATH",
    "PROGRAMS",
    "UNITS",
    "Heartbeat",
    "ProcId",
    "Sandbox",
    "SandboxError",
    "SandboxFailed",
    "SandboxUnavailable",
    "lock_owner",
    "send_signal",
    "terminate",
    "unit_cgroup_members",
    "wait_for",
]
