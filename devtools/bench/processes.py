"""Child processes of the run (each one tracked, each one ends with the run) and what the
bench reads of a process: its CPU time and RSS, the tail of its log."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from pathlib import Path
from typing import Any

from devtools.bench.settings import say
from devtools.sandbox.host import tail as tail_lines
from supervisor.probing.resources import ProcReader

_children: list[subprocess.Popen[Any]] = []
_proc = ProcReader()


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Popen, remembered until `stop_process` (or `stop_children` at the end of the run)."""
    proc: subprocess.Popen[Any] = subprocess.Popen(cmd, **kwargs)
    _children.append(proc)
    return proc


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM (and SIGCONT, in case we stopped it), then SIGKILL; always reaps it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    with contextlib.suppress(ValueError):
        _children.remove(proc)


def stop_children() -> None:
    """Stop every process the run started and has not stopped yet, newest first."""
    for proc in reversed(list(_children)):
        try:
            stop_process(proc)
        except Exception as exc:  # teardown goes on whatever one child does
            say(f"could not stop pid {proc.pid}: {exc}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` so far."""
    return _proc.cpu_seconds([pid])


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MiB."""
    return _proc.rss_bytes([pid]) / 2**20


def tail(path: Path, lines: int = 12) -> str:
    """The end of a log, to quote in an error."""
    return "\n".join(tail_lines(path, lines)) or "(no log)"
