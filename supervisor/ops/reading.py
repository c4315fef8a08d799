"""Pure readers of what the machine says: /proc/locks, and a unit file against its template."""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"@(VENV|CONFIG)@")


def unit_differences(template: str, installed: str) -> list[str]:
    """Lines where the installed unit differs from the shipped template (placeholders match
    any path, as the installer fills them in)."""
    want = template.rstrip("\n").splitlines()
    have = installed.rstrip("\n").splitlines()
    diffs = []
    for i in range(max(len(want), len(have))):
        w = want[i] if i < len(want) else None
        h = have[i] if i < len(have) else None
        if w is not None and h is not None and _line_matches(w, h):
            continue
        diffs.append(f"line {i + 1}: shipped {w!r}, installed {h!r}")
    return diffs


def _line_matches(template: str, line: str) -> bool:
    parts = _PLACEHOLDER.split(template)
    pattern = "".join(re.escape(p) if i % 2 == 0 else r"\S+" for i, p in enumerate(parts))
    return re.fullmatch(pattern, line) is not None


def lock_holder(
    locks: str, major: int, minor: int, inode: int, written: int | None = None
) -> int | None:
    """The PID holding an flock on the file (device major:minor, inode), from /proc/locks.

    On overlay filesystems /proc/locks names the device underneath, not the one stat()
    gives: then a lock on the same inode counts only if its PID is the one the holder wrote
    into the file (`written`).
    """
    wanted = f"{major:02x}:{minor:02x}:{inode}"
    for line in locks.splitlines():
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue  # a waiter, or another kind of lock
        pid, where = int(fields[4]), fields[5]
        if where == wanted or (where.endswith(f":{inode}") and pid == written):
            return pid
    return None
