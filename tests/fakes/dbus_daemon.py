"""A private `dbus-daemon --session` for one test: its own socket, stopped and started on demand."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self


class BusUnavailableError(RuntimeError):
    """dbus-daemon is not installed here."""


class BusDaemon:
    """One `dbus-daemon --session --nofork --print-address`, nobody else on it.

    Start-up takes a few milliseconds, so tests take one each. `stop()` ends it: every client
    sees its connection drop, as when the user's bus goes away; `start()` again brings a new
    bus up on the same address, as when the user's bus comes back. Its socket lives in a
    directory of its own (short, under the system's temporary directory: a socket path may
    not exceed 108 bytes), removed by `close()`.
    """

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._listen = ""  # what to listen on: first a fresh socket in _dir, then the same one
        self._proc: subprocess.Popen[str] | None = None
        self.address = ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> str:
        """Start the bus (on the address it had before, if any); return its address.

        Raises BusUnavailableError if dbus-daemon is not installed, RuntimeError if it would
        not start (that is a broken machine, not a reason to skip).
        """
        exe = shutil.which("dbus-daemon")
        if exe is None:
            raise BusUnavailableError("dbus-daemon is not installed (Debian package dbus-daemon)")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="fake-bus-"))
            self._listen = f"unix:dir={self._dir}"
        with (self._dir / "dbus-daemon.log").open("a") as log:
            # stderr to a file: it only ever says a line or two, and nobody must drain a pipe.
            proc = subprocess.Popen(
                [exe, "--session", "--nofork", "--print-address", f"--address={self._listen}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self._proc = proc
        assert proc.stdout is not None
        # One line, printed once the socket listens; EOF (an empty line) if it exited instead.
        address = proc.stdout.readline().strip()
        proc.stdout.close()
        if not address:
            self.stop()
            raise RuntimeError(f"dbus-daemon did not start: {self.log().strip()[-500:]}")
        self.address = address
        self._listen = address.split(",guid=")[0]
        return address

    @property
    def running(self) -> bool:
        """True from start() until stop() (or until the daemon died by itself)."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """End the bus (idempotent): every connection on it is dropped."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the bus and remove its directory."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def log(self) -> str:
        """What the daemon wrote to stderr."""
        if self._dir is None:
            return ""
        try:
            return (self._dir / "dbus-daemon.log").read_text()
        except OSError:
            return ""
