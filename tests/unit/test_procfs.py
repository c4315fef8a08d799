from __future__ import annotations

import pytest

from supervisor.procfs import parse_cgroup, parse_stat

# A real line's shape: the command name may hold spaces and ')'.
STAT = "4242 (evil ) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 98765 " + (
    "0 " * 32
)


def test_stat_fields_are_found_after_the_last_paren() -> None:
    stat = parse_stat(STAT)
    assert (stat.state, stat.ppid, stat.cpu_ticks, stat.start_ticks) == ("S", 1, 10, 98765)
    assert not stat.zombie
    assert parse_stat(STAT.replace(") S ", ") Z ")).zombie


def test_a_line_that_is_not_stat_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a /proc/PID/stat line"):
        parse_stat("garbage")
    with pytest.raises(ValueError):
        parse_stat("1 (short) S 1 2")


def test_cgroup_prefers_unified_then_systemd_v1() -> None:
    hybrid = "9:name=systemd:/user.slice/app.slice/trader.service\n0::/\n"
    assert parse_cgroup(hybrid) == "/user.slice/app.slice/trader.service"
    unified = "0::/user.slice/app.slice/dashboard.service\n"
    assert parse_cgroup(unified) == "/user.slice/app.slice/dashboard.service"
    assert parse_cgroup("4:pids:/\n") == ""
