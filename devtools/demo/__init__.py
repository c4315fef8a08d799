"""Demo programs that stand in for a trading deployment in the systemd sandbox.

Three programs run as systemd user units (``python -m devtools.demo <program> ...``):

- ``trader``: writes a heartbeat file every second (JSON with its PID and the time);
- ``dashboard``: answers ``GET /health`` on 127.0.0.1:<port> with ``{"status": "ok",
  "pid": ...}``; exits 1 with a clear message when the port is already taken;
- ``position-monitor``: writes a heartbeat file like the trader.

``orphan --port N`` listens on a port forever, to play a stray process (run outside any unit)
that holds the dashboard's port. ``fault <program> <fault> --root <sandbox root>`` makes a
running program misbehave on demand; the faults and how each is delivered are listed in
`devtools.demo.faults` and in ``python -m devtools.demo --help``. All of it is stdlib only.
"""

from devtools.demo.faults import FAULTS, HEARTBEAT_PROGRAMS, PROGRAMS, FaultError

__all__ = ["FAULTS", "HEARTBEAT_PROGRAMS", "PROGRAMS", "FaultError"]
