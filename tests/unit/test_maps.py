"""devtools.maps: a process's resident memory summed by kind of mapping. Pure."""

from __future__ import annotations

import os

from devtools.maps import kinds, sample

SMAPS = """\
55d0c000-55d0f000 r--p 00000000 fe:01 1234    /usr/bin/python3.11
Size:                 12 kB
Rss:                  12 kB
55d10000-55e10000 rw-p 00000000 00:00 0       [heap]
Rss:                 900 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
Rss:                1000 kB
7f0000100000-7f0000300000 rw-p 00000000 00:00 0
Rss:                 300 kB
7f1000000000-7f1000010000 r-xp 00000000 fe:01 99      /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                  64 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0       [stack]
Rss:                  40 kB
"""


def test_resident_memory_is_summed_by_kind_of_mapping() -> None:
    assert kinds(SMAPS.splitlines(keepends=True)) == {
        "file:python3.11": 12,
        "heap": 900,
        "arena": 1000,  # exactly 1 MiB: one of CPython's arenas
        "anon": 300,
        "libs": 64,
        "stack": 40,
    }


def test_a_sample_of_this_process_adds_up_to_its_rss() -> None:
    got = sample(os.getpid())
    with open("/proc/self/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    resident = sum(v for k, v in got.items() if k not in ("at", "threads"))
    assert isinstance(got["threads"], int) and got["threads"] >= 1
    assert abs(resident - rss) < rss * 0.1  # smaps and status are read a moment apart
