"""ProcReader against a small fake /proc and cgroup tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.probing.resources import ProcReader


def fake_proc(root: Path, pid: int, utime: int, stime: int, rss_pages: int) -> None:
    d = root / "proc" / str(pid)
    d.mkdir(parents=True)
    # The command name holds spaces and a ')' to prove fields are found from the last ')'.
    fields = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0", str(utime), str(stime)]
    rest = " 0 0 20 0 1 0 4242" + " 0" * 32  # ... num_threads, itrealvalue, starttime, ...
    (d / "stat").write_text(f"{pid} (evil ) name) " + " ".join(fields) + rest + "\n")
    (d / "statm").write_text(f"1000 {rss_pages} 10 1 0 50 0\n")


@pytest.fixture
def reader(tmp_path: Path) -> ProcReader:
    unit = tmp_path / "cg" / "unified" / "app.slice" / "trader.service"
    (unit / "worker").mkdir(parents=True)
    (unit / "cgroup.procs").write_text("10\n11\n")
    (unit / "worker" / "cgroup.procs").write_text("12\n")
    other = tmp_path / "cg" / "unified" / "app.slice" / "other.service"
    other.mkdir(parents=True)
    (other / "cgroup.procs").write_text("99\n")
    fake_proc(tmp_path, 10, 100, 50, 256)
    fake_proc(tmp_path, 11, 300, 50, 256)
    fake_proc(tmp_path, 12, 0, 0, 512)
    return ProcReader(tmp_path / "proc", tmp_path / "cg", ticks_per_s=100, page_size=4096)


def test_pids_include_sub_cgroups_only_of_the_unit(reader: ProcReader) -> None:
    assert reader.pids("/app.slice/trader.service") == [10, 11, 12]


def test_root_cgroup_is_never_read(reader: ProcReader) -> None:
    assert reader.pids("/") == []
    assert reader.pids("") == []


def test_unknown_cgroup_is_empty(reader: ProcReader) -> None:
    assert reader.pids("/app.slice/missing.service") == []


def test_cpu_and_rss_sum_live_processes(reader: ProcReader) -> None:
    pids = [10, 11, 12, 4242]  # 4242 exited: skipped, not an error
    assert reader.cpu_seconds(pids) == pytest.approx(5.0)
    assert reader.rss_bytes(pids) == (256 + 256 + 512) * 4096


def test_v1_hierarchy_fallback(tmp_path: Path) -> None:
    unit = tmp_path / "cg" / "systemd" / "app.slice" / "a.service"
    unit.mkdir(parents=True)
    (unit / "cgroup.procs").write_text("7\n")
    assert ProcReader(tmp_path, tmp_path / "cg").pids("/app.slice/a.service") == [7]
