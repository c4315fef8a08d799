"""Port holders found through real /proc, the safety rules, and a real SIGTERM/SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.recovery import ports
from tests.unit.test_resources import TCP, peak_of, time_wait_lines

STUBBORN = """
import signal, socket, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True)
while True: signal.pause()
"""
POLITE = STUBBORN.replace("signal.signal(signal.SIGTERM, signal.SIG_IGN)", "")


def start(code: str) -> tuple[subprocess.Popen[str], int]:
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    return p, int(p.stdout.readline())


def stop(p: subprocess.Popen[str]) -> None:
    p.kill()
    p.wait()
    assert p.stdout is not None
    p.stdout.close()


@pytest.fixture
def polite() -> Iterator[tuple[subprocess.Popen[str], int]]:
    p, port = start(POLITE)
    yield p, port
    stop(p)


@pytest.fixture
def stubborn() -> Iterator[tuple[subprocess.Popen[str], int]]:
    p, port = start(STUBBORN)
    yield p, port
    stop(p)


def test_finds_the_listener_and_only_it(polite: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = polite
    [holder] = ports.find_holders(port)
    assert holder.pid == proc.pid
    assert holder.uid == os.getuid()
    assert "signal.pause" in holder.cmdline
    assert holder.start_ticks == ports.start_ticks(Path(f"/proc/{proc.pid}"))


def test_no_holder_on_a_free_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: nobody holds it as a server
    assert ports.find_holders(port) == []


async def still_fine() -> str | None:
    return None


async def test_terminate_polite_with_sigterm(polite: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = polite
    [holder] = ports.find_holders(port)
    assert await ports.terminate(holder, still_fine, grace_s=5) == "terminated (SIGTERM)"
    assert proc.wait(timeout=5) == -15


async def test_terminate_stubborn_with_sigkill(stubborn: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = stubborn
    [holder] = ports.find_holders(port)
    assert await ports.terminate(holder, still_fine, grace_s=0.3) == "killed (SIGKILL)"
    assert proc.wait(timeout=5) == -9


async def test_a_reused_pid_is_never_signalled(polite: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = polite
    [holder] = ports.find_holders(port)
    impostor = ports.Holder(
        holder.pid,
        holder.uid,
        holder.user,
        holder.cmdline,
        holder.cgroup,
        holder.start_ticks + 1,
        port,
    )
    assert (await ports.terminate(impostor, still_fine)).startswith("already gone (PID reused")
    assert proc.poll() is None  # still alive


# Listens like the others, and reports every signal it gets on stdout, in order.
RECORDING = """
import signal, socket, sys
def said(signum, _frame): print(signal.Signals(signum).name, flush=True)
for sig in (signal.SIGTERM, signal.SIGUSR1): signal.signal(sig, said)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True)
while True: signal.pause()
"""


@pytest.fixture
def recording() -> Iterator[tuple[subprocess.Popen[str], int]]:
    p, port = start(RECORDING)
    yield p, port
    stop(p)


async def test_a_holder_that_fails_the_recheck_is_never_signalled(
    recording: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = recording
    [holder] = ports.find_holders(port)
    checks = []

    async def recheck() -> str | None:
        # The first look, right before SIGTERM: it joined a service since it was judged.
        checks.append(1)
        return "it now belongs to dashboard.service"

    words = await ports.terminate(holder, recheck, grace_s=0.3)
    assert words == "not signalled: it now belongs to dashboard.service"
    assert checks == [1]
    # No signal at all: the first signal it ever reports is the one we send now.
    proc.send_signal(signal.SIGUSR1)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "SIGUSR1"
    assert proc.poll() is None


async def test_a_holder_that_fails_the_recheck_before_sigkill_is_not_killed(
    stubborn: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = stubborn
    [holder] = ports.find_holders(port)
    checks = []

    async def recheck() -> str | None:
        # First look: still the orphan. Second (before SIGKILL): it joined a service.
        checks.append(1)
        return None if len(checks) == 1 else "it now belongs to dashboard.service"

    words = await ports.terminate(holder, recheck, grace_s=0.3)
    assert words == "not signalled: it now belongs to dashboard.service"
    assert len(checks) == 2
    assert proc.poll() is None  # SIGTERM was ignored, and SIGKILL never sent


def holder(**kw: object) -> ports.Holder:
    base: dict[str, object] = dict(
        pid=4242,
        uid=1000,
        user="trader",
        cmdline="python stray.py",
        cgroup="/user.slice/user-1000.slice/session-3.scope",
        start_ticks=1,
        port=5050,
    )
    base.update(kw)
    return ports.Holder(**base)  # type: ignore[arg-type]


def verdict(h: ports.Holder) -> str | None:
    return ports.judge(
        h,
        own_unit="dashboard.service",
        other_units=["trader.service", "position-monitor.service"],
        our_pid=777,
        our_uid=1000,
    )


def test_an_orphan_in_a_session_may_be_killed() -> None:
    assert verdict(holder()) is None


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"pid": 1}, "is PID 1"),
        ({"pid": 777}, "the supervisor itself"),
        ({"uid": 0, "user": "root"}, "another user (root)"),
        ({"cgroup": "/app.slice/trader.service"}, "belongs to trader.service, another watched"),
        ({"cgroup": "/app.slice/nginx.service"}, "nginx.service, a service we do not own"),
        ({"cgroup": "/app.slice/dashboard.service"}, "dashboard.service itself"),
    ],
)
def test_safety_rules_forbid(kw: dict[str, object], words: str) -> None:
    reason = verdict(holder(**kw))
    assert reason is not None
    assert words in reason
    assert "pid" in reason


def _peak_finding(tmp_path: Path, sockets: int) -> int:
    """Bytes allocated at most while looking for port 5050's holders among `sockets` more."""
    proc = tmp_path / str(sockets)
    (proc / "net").mkdir(parents=True)
    (proc / "net" / "tcp").write_text(TCP + time_wait_lines(sockets))
    found, peak = peak_of(lambda: ports.listening_inodes(5050, proc))
    assert found == {777}
    return peak


def test_thousands_of_sockets_on_the_host_cost_the_search_no_more_memory(
    tmp_path: Path,
) -> None:
    few, many = _peak_finding(tmp_path, 100), _peak_finding(tmp_path, 20_000)
    assert many < few + 64 * 1024, (few, many)
