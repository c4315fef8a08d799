"""A run's last lines: from the journal (by invocation id) or the end of its output file.

Read off the event loop (a subprocess, a worker thread), always under a deadline: the alert
waits for these lines at most half a second, and a journal that is missing, slow or huge
only ever costs one line saying why. Lines come back bounded (count, width, total) and
passed through the scrubber it is given (the joiner's: no secret gets through).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from supervisor.watch.cause import (
    FILE_OUTPUTS,
    ExitFacts,
    LastWords,
    bound,
    output_in_unit_files,
)

_TAIL_BYTES = 64 * 1024  # read no more of a file's end than this


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a run's output to keep."""

    lines: int = 20
    width: int = 200  # characters per line
    total: int = 3000  # characters in all (fits a Telegram message with room to spare)
    timeout_s: float = 2.0  # the read itself; an alert waits for it at most 0.5 s (WAIT_S)


class LastWordsReader:
    """Reads a run's last lines from the journal or a file."""

    def __init__(
        self,
        scrub: Callable[[str], str],
        journalctl: str = "journalctl",
        env: dict[str, str] | None = None,
    ) -> None:
        self._scrub = scrub  # every line passes through it before it is kept
        self._journalctl = journalctl
        self._env = env

    async def read(self, facts: ExitFacts, limits: Limits) -> LastWords:
        """The last lines of the run `facts` tells of (journal or output file), or why not."""
        invocation, output_file = facts.invocation, facts.output_file
        try:
            async with asyncio.timeout(limits.timeout_s):
                if not output_file and facts.output_kind in FILE_OUTPUTS:
                    output_file = await asyncio.to_thread(_output_file, facts.unit_files)
                    if not output_file:
                        return LastWords(unavailable="its output file is not named in its unit")
                if output_file:
                    raw, source = await asyncio.to_thread(_tail, output_file), f"file {output_file}"
                elif invocation:
                    raw, source = await self._journal(facts, limits.lines), "journal"
                else:
                    return LastWords(unavailable="no invocation id: the journal cannot be asked")
        except TimeoutError:
            return LastWords(unavailable=f"reading the log took over {limits.timeout_s:.1f} s")
        except OSError as exc:
            return LastWords(unavailable=f"log unreadable: {exc.strerror or exc}")
        except LogUnavailableError as exc:
            return LastWords(unavailable=str(exc))
        lines = bound(map(self._scrub, raw), limits.lines, limits.width, limits.total)
        if not lines:
            return LastWords(source=source, unavailable=f"nothing in the {source.split()[0]}")
        return LastWords(lines, source)

    async def _journal(self, facts: ExitFacts, count: int) -> list[str]:
        proc = await asyncio.create_subprocess_exec(
            self._journalctl,
            "--no-pager",
            "--quiet",
            "--output=cat",
            f"--lines={count}",
            *journal_matches(facts),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
        )
        try:
            out, err = await proc.communicate()
        except asyncio.CancelledError:  # our deadline: never leave journalctl behind
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            why = err.decode(errors="replace").strip().splitlines()
            raise LogUnavailableError(f"journalctl failed: {why[-1] if why else proc.returncode}")
        return out.decode(errors="replace").splitlines()


class LogUnavailableError(Exception):
    """The log could not be read (the message says why, in one line)."""


def journal_matches(facts: ExitFacts) -> list[str]:
    """journalctl's matches for the run: its invocation id, or its main process since it began.

    journald tags a unit's output with `_SYSTEMD_INVOCATION_ID` from the unit's cgroup; where
    it cannot (a user manager that is not under user@.service, as on cgroup v1 hosts), the
    stream still carries the trusted `_PID` of the process systemd started, so that PID since
    the run's start is the same run.
    """
    matches = [f"_SYSTEMD_INVOCATION_ID={facts.invocation}"]
    if facts.main_pid > 0 and facts.started_usec > 0:
        since = f"--since=@{facts.started_usec // 1_000_000}"
        matches = [since, *matches, "+", f"_PID={facts.main_pid}"]
    return matches


def _output_file(unit_files: tuple[str, ...]) -> str:
    texts = []
    for path in unit_files:
        with contextlib.suppress(OSError):
            texts.append(Path(path).read_text(errors="replace"))
    return output_in_unit_files(texts)


def _tail(path: str) -> list[str]:
    """The last lines of a file, reading at most its last 64 KiB."""
    with Path(path).open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - _TAIL_BYTES))
        data = f.read(_TAIL_BYTES)
    lines = data.decode(errors="replace").splitlines()
    return lines[1:] if size > _TAIL_BYTES else lines  # the first may be cut mid-line
