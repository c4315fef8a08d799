"""sd_notify against a real datagram socket."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.runtime.notify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_sends_ready_status_once_and_stopping(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    n.ready()
    n.status("3 targets: 3 pass")
    n.status("3 targets: 3 pass")  # unchanged: not sent again
    n.status("3 targets: 2 pass, 1 fail (dashboard)")
    n.stopping()
    got = [sock.recv(4096).decode() for _ in range(4)]
    assert got == [
        "READY=1",
        "STATUS=3 targets: 3 pass",
        "STATUS=3 targets: 2 pass, 1 fail (dashboard)",
        "STOPPING=1",
    ]
    n.close()


def test_abstract_namespace(listener: tuple[socket.socket, str]) -> None:
    name = f"sidecar-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        n.ready()
        assert sock.recv(64) == b"READY=1"
        n.close()
    finally:
        sock.close()


def test_watchdog_only_when_asked_for_this_pid(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    other = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval_s is None
    ours = Notifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert ours.watchdog_interval_s == 1.0
    other.watchdog()
    ours.watchdog()
    assert sock.recv(64) == b"WATCHDOG=1"
    other.close()
    ours.close()


def test_unset_socket_is_silent_and_opens_nothing() -> None:
    before = len(os.listdir("/proc/self/fd"))
    n = Notifier({})
    assert not n.enabled
    assert n.send("READY=1") is False
    n.ready()
    n.watchdog()
    assert len(os.listdir("/proc/self/fd")) == before


def test_missing_listener_does_not_raise(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert n.send("READY=1") is False
    n.close()
