"""The supervisor as a real child process: its notify socket, its stderr in a file.

In-process daemons share the test's CPU time and descriptors; tests about our own budget
or our own limits need the supervisor in a process of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from devtools.net import free_port


class Proc:
    """A supervisor process with a notify socket and its stderr in a file.

    `config` is TOML with a `{port}` placeholder for the free HTTP port; `env` is added to
    ours (the sandbox's bus, say); `nofile` sets its descriptor limit, soft and hard, as
    `ulimit -n` would (util-linux's prlimit, so no code runs between fork and exec), and
    `nofile_hard` a higher hard limit (as systemd's LimitNOFILE=1024:8192 would).
    """

    def __init__(
        self,
        tmp: Path,
        config: str,
        *,
        watchdog_usec: int = 400_000,
        env: Mapping[str, str] | None = None,
        nofile: int | None = None,
        nofile_hard: int | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "config.toml"
        self.config.write_text(config.format(port=self.port))
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(tmp / "notify"))
        self.notify.settimeout(15)
        self.statuses: list[str] = []  # every STATUS= line received so far
        self.log = tmp / "stderr.log"
        stderr = self.log.open("wb")
        st = os.fstat(stderr.fileno())
        full_env = {
            **os.environ,
            "NOTIFY_SOCKET": str(tmp / "notify"),
            "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp}/no-bus",
            "WATCHDOG_USEC": str(watchdog_usec),
            "XDG_STATE_HOME": str(tmp / "state"),
            **(env or {}),
        }
        cmd = [sys.executable, "-m", "supervisor", "run", "--config", str(self.config)]
        if nofile is not None:
            cmd = ["prlimit", f"--nofile={nofile}:{nofile_hard or nofile}", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stderr=stderr, env=full_env)
        # systemd sets WATCHDOG_PID to the main PID; here the child's PID is only known now,
        # so the watchdog is asked for through WATCHDOG_USEC alone (no WATCHDOG_PID).
        stderr.close()

    def messages_until(self, wanted: str) -> list[str]:
        """Notify datagrams received up to and including one that starts with `wanted`."""
        got = []
        while True:
            msg = self.notify.recv(4096).decode()
            got.append(msg)
            if msg.startswith("STATUS="):
                self.statuses.append(msg)
            if msg.startswith(wanted):
                return got

    def status_until(self, pred: Callable[[str], bool], limit: float, what: str) -> str:
        """The current STATUS= line once `pred` holds for it, within `limit` seconds.

        STATUS= is sent when it changes and WATCHDOG=1 after every pass (at least every
        WATCHDOG_USEC/2): each datagram is a moment to look again, so this waits on the
        daemon's own messages, never on a fixed time.
        """
        deadline = time.monotonic() + limit
        while True:
            current = self.statuses[-1] if self.statuses else ""
            if pred(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}: {current}")
            self.messages_until("")

    def log_text(self) -> str:
        """Everything it logged so far."""
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        """Kill it if it still runs; close the socket."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.notify.close()
