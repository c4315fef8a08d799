"""A real systemd-journald for the tests that read the journal (this host runs none).

Started only for those tests, only as root, and only if no journald runs already (then that
one is used and left alone). It keeps its files in /run/log/journal (volatile: nothing asks it
to flush to /var), and on stop removes the directories it created. Units started while it
runs log to it; units started before or after are not affected (they never reach it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from devtools.sandbox.procs import wait_for

BINARY = Path("/usr/lib/systemd/systemd-journald")
RUN = Path("/run/systemd/journal")
STDOUT = RUN / "stdout"
FILES = Path("/run/log/journal")
START_TIMEOUT_S = 10.0


class JournalUnavailableError(Exception):
    """No journal can be had here (the message says why)."""


class Journald:
    """systemd-journald, started for a while (a context manager)."""

    def __init__(self, log: Path) -> None:
        self._log = log  # journald's own messages, for when it will not start
        self._proc: subprocess.Popen[bytes] | None = None
        self._created: list[Path] = []

    def __enter__(self) -> Journald:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start journald unless one answers already; JournalUnavailableError if it cannot."""
        if _answers():
            return  # someone's journald: use it, never stop it
        if os.geteuid() != 0:
            raise JournalUnavailableError("systemd-journald must run as root")
        if not BINARY.exists():
            raise JournalUnavailableError(f"{BINARY} is not installed")
        self._created = [p for p in (RUN, FILES.parent, FILES) if not p.exists()]
        with self._log.open("wb") as out:
            self._proc = subprocess.Popen(
                [str(BINARY)],
                env={"SYSTEMD_LOG_TARGET": "console", "SYSTEMD_LOG_LEVEL": "notice"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        try:
            wait_for(self._ready, START_TIMEOUT_S, "systemd-journald to listen")
        except Exception as exc:
            self.stop()
            why = self._log.read_text(errors="replace").strip().splitlines()[-3:]
            raise JournalUnavailableError(f"{exc}: {' / '.join(why)}") from None

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise JournalUnavailableError(f"systemd-journald exited ({self._proc.returncode})")
        return _answers()

    def stop(self) -> None:
        """Stop the journald we started (if any) and remove what it created."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for path in reversed(self._created):
            shutil.rmtree(path, ignore_errors=True)
        self._created = []


def _answers() -> bool:
    """True when a journald accepts stream connections (what a unit's stdout uses)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(STDOUT))
        except OSError:
            return False
    return True
