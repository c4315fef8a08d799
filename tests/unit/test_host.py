"""Host checks on a fake /proc tree and made-up statvfs figures, plus one real statvfs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from supervisor.config import DiskProbe, LoadProbe, MemoryProbe
from supervisor.model import PerfDatum, Status
from supervisor.probing.host import DiskCheck, LoadCheck, MemoryCheck, judge_disk, size

GIB = 1024**3


def vfs(used_pct: float, inode_pct: float = 10.0, blocks: int = 1000) -> os.statvfs_result:
    """A filesystem of `blocks` 1 MiB blocks, `used_pct` used (no reserved blocks)."""
    free = int(blocks * (100 - used_pct) / 100)
    files = 1000
    ffree = int(files * (100 - inode_pct) / 100)
    return os.statvfs_result((1 << 20, 1 << 20, blocks, free, free, files, ffree, ffree, 0, 255))


def disk(**kw: Any) -> DiskProbe:
    return DiskProbe(type="disk", path=Path("/data"), warn_percent=80, fail_percent=90, **kw)


def test_disk_levels_and_words() -> None:
    ok = judge_disk(disk(), vfs(50))
    assert (ok.status, ok.output) == (
        Status.PASS,
        "disk: /data 50% used, 500.0 MiB free; inodes 10% used",
    )
    assert ok.perfdata == (
        PerfDatum("used", 0.5, "ratio"),
        PerfDatum("free", 500.0 * (1 << 20), "bytes"),
        PerfDatum("inodes_used", 0.1, "ratio"),
    )
    warn = judge_disk(disk(), vfs(85))
    assert (warn.status, warn.output) == (
        Status.WARN,
        "disk: /data 85% used (warn at 80%), 150.0 MiB free; inodes 10% used",
    )
    assert judge_disk(disk(), vfs(95)).status is Status.FAIL


def test_inodes_count_too_unless_switched_off() -> None:
    full = judge_disk(disk(), vfs(10, inode_pct=95))
    assert full.status is Status.FAIL
    assert full.output.endswith("inodes 95% used (fail at 90%)")
    assert judge_disk(DiskProbe(type="disk", path=Path("/d"), inodes=False), vfs(10, 95)).ok


def test_reserved_blocks_count_as_used_like_df() -> None:
    st = os.statvfs_result((4096, 4096, 100, 20, 10, 0, 0, 0, 0, 255))  # 10 blocks for root
    assert judge_disk(disk(), st).value == 88.9  # 80 used / (80 used + 10 available)


async def test_disk_check_reads_a_real_filesystem(tmp_path: Path) -> None:
    r = await DiskCheck(
        DiskProbe(type="disk", path=tmp_path, warn_percent=100, fail_percent=100)
    ).check()
    assert r.output.startswith(f"disk: {tmp_path} ")
    missing = await DiskCheck(DiskProbe(type="disk", path=tmp_path / "nope")).check()
    assert (missing.status, missing.output) == (
        Status.FAIL,
        f"disk: cannot stat {tmp_path / 'nope'}: No such file or directory",
    )


def fake_proc(tmp_path: Path, meminfo: str = "", loadavg: str = "") -> Path:
    (tmp_path / "meminfo").write_text(meminfo)
    (tmp_path / "loadavg").write_text(loadavg)
    return tmp_path


async def test_memory_from_meminfo(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path, "MemTotal:       8000000 kB\nMemFree:  100 kB\nMemAvailable:   1000000 kB\n"
    )
    r = await MemoryCheck(MemoryProbe(type="memory"), proc).check()
    assert (r.status, r.value) == (Status.WARN, 87.5)
    assert r.output == "memory: 88% used (warn at 85%), 976.6 MiB available of 7.6 GiB"
    assert PerfDatum("available", 1_024_000_000, "bytes") in r.perfdata


async def test_load_per_cpu(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, loadavg="9.00 5.00 1.00 3/400 12345\n")
    spec = LoadProbe(type="load", minutes=5, warn_per_cpu=2, fail_per_cpu=4)
    r = await LoadCheck(spec, proc, cpus=2).check()
    assert (r.status, r.output) == (
        Status.WARN,
        "load: 2.50 per CPU over 5 min, 2 CPUs (warn at 2)",
    )
    one = await LoadCheck(LoadProbe(type="load", minutes=1), proc, cpus=2).check()
    assert one.status is Status.FAIL
    assert [d.label for d in r.perfdata] == ["load1", "load5", "load15"]


def test_sizes_for_people() -> None:
    assert [size(512), size(3.5 * 1024**2), size(12 * GIB)] == ["512 B", "3.5 MiB", "12.0 GiB"]
