from __future__ import annotations

import pytest

from supervisor.procfs import (
    Listener,
    parse_cgroup,
    parse_schedstat,
    parse_stat,
    parse_tcp,
)

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


def test_listeners_are_listen_sockets_with_their_accept_queue() -> None:
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        "   0: 0100007F:13BA 00000000:0000 0A 00000000:00000003 00:00000000 00000000 0 0 777 1\n"
        "   1: 0100007F:13BA 0100007F:D45E 01 00000000:00000010 00:00000000 00000000 0 0 0 1\n"
        "   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 0 1\n"
        "   3: garbage\n"
    )
    assert parse_tcp(text.splitlines()).listeners == [
        Listener(port=5050, inode=777, queued=3),  # port 80's has no inode: not a socket of ours
    ]
    assert parse_tcp(text.splitlines(), 5050).listeners == [Listener(5050, 777, 3)]
    assert parse_tcp(text.splitlines(), 80).listeners == []


def test_schedstat_is_nanoseconds_on_a_cpu() -> None:
    assert parse_schedstat("1236000 4453796 3\n") == 1236000
    with pytest.raises(ValueError, match="not a schedstat line"):
        parse_schedstat("")


def test_connected_are_the_established_sockets_with_an_inode() -> None:
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n"
        "   0: 0100007F:13BA 00000000:0000 0A 00000000:00000002 00:00000000 00000000  0  0 777 1\n"
        "   1: 0100007F:13BA 0100007F:D45E 01 00000000:00000000 00:00000000 00000000  0  0 901 1\n"
        "   2: 0100007F:13BA 0100007F:D45F 01 00000000:00000000 00:00000000 00000000  0  0 0 1\n"
        "   3: 0100007F:13BA 0100007F:D460 06 00000000:00000000 00:00000000 00000000  0  0 902 1\n"
    )
    # not the listener, no inode 0, not TIME_WAIT
    assert parse_tcp(text.splitlines(), among={777, 901, 902}).connected == {901}
    # Only the sockets asked about: the host's other connections are never collected.
    assert parse_tcp(text.splitlines(), among={777, 902}).connected == set()
    assert parse_tcp(text.splitlines()).connected == set()
