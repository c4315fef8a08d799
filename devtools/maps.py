"""Where a process's RSS lives, over time: `/proc/PID/smaps` summed by kind of mapping.

    python -m devtools.maps PID OUT.jsonl [--every 5]

Appends one JSON line per sample (`at`, `threads`, and KiB resident per kind) until the
process exits. The kinds tell the allocators apart: `heap` is glibc's main arena (brk), `arena`
a mapping of exactly 1 MiB (CPython's own arenas for objects up to 512 bytes), `anon` every
other anonymous mapping (other threads' glibc arenas, large blocks, and arenas the kernel
merged with a neighbour), `stack`, `libs` (shared objects) and `file:NAME` for any other file.
A step in one kind right after an event of the run's log says what that event allocated: this
is how the soak's steps were tied to the hang evidence reading `/proc/net/tcp` whole.
`kinds` is pure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections.abc import Iterable, Sequence

_HEAD = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$")
_ARENA = 1 << 20  # CPython 3.10+: obmalloc's arenas are 1 MiB mappings of their own


def kinds(smaps: Iterable[str]) -> dict[str, int]:
    """KiB resident per kind of mapping, from the lines of /proc/PID/smaps."""
    found: dict[str, int] = {}
    kind = "anon"
    for line in smaps:
        head = _HEAD.match(line)
        if head:
            kind = _kind(int(head[2], 16) - int(head[1], 16), head[3].strip())
        elif line.startswith("Rss:"):
            found[kind] = found.get(kind, 0) + int(line.split()[1])
    return found


def _kind(size: int, name: str) -> str:
    if name == "[heap]":
        return "heap"
    if name.startswith("[stack"):
        return "stack"
    if not name:
        return "arena" if size == _ARENA else "anon"
    if ".so" in name:
        return "libs"
    return "file:" + name.rsplit("/", 1)[-1]


def sample(pid: int) -> dict[str, float]:
    """One sample of `pid` (OSError once it has exited)."""
    with open(f"/proc/{pid}/smaps") as smaps:
        found = kinds(smaps)
    return {"at": time.time(), "threads": len(os.listdir(f"/proc/{pid}/task")), **found}


def main(argv: Sequence[str] | None = None) -> int:
    """Sample until the process exits."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("out", help="JSON lines are appended here")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    args = parser.parse_args(argv)
    while True:
        try:
            line = json.dumps(sample(args.pid))
        except OSError:
            return 0
        with open(args.out, "a") as out:
            out.write(line + "\n")
        time.sleep(args.every)


if __name__ == "__main__":
    raise SystemExit(main())
