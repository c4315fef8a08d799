"""Stuck or slow, on the real sandbox at the default probe settings (period 5 s, timeout 2 s,
3 failures): a stopped or deadlocked dashboard is `fail` after one probe; a spinning one after
three timeouts, as before; a slow one under CPU load never.

How fast is the benchmark's to show (`python -m devtools.bench --only hang`), not these tests'.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from devtools.sandbox import Sandbox
from supervisor.model import Status
from tests.integration.harness import Running, config, http_probe, running, target_toml
from tests.polling import until

pytestmark = pytest.mark.sandbox
# 30 s: probes every 5 s meet the fault's 6 s cycle at each whole second of it once (30 is the
# least common multiple), so at least one probe starts inside a 1.5 s pause and waits for it.
SLOW_WATCH_S = 30.0


def counted(run: Running, name: str, target: str) -> float:
    """A per-target counter of the daemon's own metrics registry (summed over probes)."""
    total = 0.0
    for metric in run.inside.metrics():
        for sample in metric.samples:
            if sample.name == name and sample.labels.get("target") == target:
                total += sample.value
    return total


def failures(run: Running) -> float:
    return counted(run, "supervisor_probe_failures_total", "dashboard")


def dashboard(sandbox: Sandbox, recovery: str = "enabled = false") -> str:
    body = f"ports = [{sandbox.dashboard_port}]\n" + http_probe(sandbox)
    return target_toml("dashboard", "dashboard.service", body, recovery=recovery)


async def test_sigstop_is_stuck_and_fails_on_its_first_probe(sandbox: Sandbox) -> None:
    async with running(sandbox, config(sandbox, dashboard(sandbox))) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        pid = sandbox.main_pid("dashboard.service")
        before = failures(run)
        os.kill(pid, signal.SIGSTOP)
        try:
            await until(lambda: run.status("dashboard") is Status.FAIL, 20, "dashboard fail")
            output = run.target("dashboard").output
        finally:
            os.kill(pid, signal.SIGCONT)
        # One probe, ended before its timeout by the evidence, not three timeouts.
        assert failures(run) - before == 1
        said = rf"http: no answer after \d\.\d s; stuck: pid {pid} stopped \(state T\) for 0\.\d s"
        assert re.fullmatch(said + ", nothing answers", output), output
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass again")


async def test_a_deadlocked_dashboard_fails_at_its_first_timeout(sandbox: Sandbox) -> None:
    """Every handler blocks on a lock, the port stays open: no CPU, connections queue."""
    async with running(sandbox, config(sandbox, dashboard(sandbox))) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        pid = sandbox.main_pid("dashboard.service")
        before = failures(run)
        sandbox.fault("dashboard", "deadlock")
        await until(lambda: run.status("dashboard") is Status.FAIL, 20, "dashboard fail")
        output = run.target("dashboard").output
        assert failures(run) - before == 1
        assert output.startswith(f"http: timeout after 2.0 s; stuck: pid {pid} used ")
        assert f"waited to be accepted on port {sandbox.dashboard_port}" in output
        assert sandbox.main_pid("dashboard.service") == pid  # alive all along, not restarted


async def test_a_spinning_handler_takes_the_timeout_path(sandbox: Sandbox) -> None:
    """CPU moves, nothing is answered: not provably stuck, so three timeouts, as before."""
    async with running(sandbox, config(sandbox, dashboard(sandbox))) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        before = failures(run)
        sandbox.fault("dashboard", "spin")
        await until(lambda: run.status("dashboard") is Status.FAIL, 30, "dashboard fail")
        assert run.target("dashboard").output == "http: timeout after 2.0 s"
        assert failures(run) - before == 3


@contextmanager
def cpu_hogs(n: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`n` processes spinning on the CPU until the block ends."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


async def test_slow_but_alive_under_cpu_load_is_never_failed(sandbox: Sandbox) -> None:
    """Pauses of 1.5 s every 6 s (no CPU, connections queue meanwhile, as in a deadlock),
    three CPU-bound processes on the two cores, for 30 s: never `fail`, never restarted."""
    cfg = config(sandbox, dashboard(sandbox, recovery="enabled = true"))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        pid = sandbox.main_pid("dashboard.service")
        restarts = sandbox.show("dashboard.service", "NRestarts")["NRestarts"]
        sandbox.fault("dashboard", "slow")
        seen: set[Status] = set()

        def failed() -> bool:
            seen.add(run.status("dashboard"))
            return Status.FAIL in seen

        with cpu_hogs(3), pytest.raises(AssertionError, match="timed out"):
            # Watch the whole time: a single `fail` ends the wait (and the test) early.
            await until(
                failed,
                SLOW_WATCH_S,
                "dashboard fail (it must never come)",
                step=0.02,
            )
        assert Status.FAIL not in seen
        assert sandbox.main_pid("dashboard.service") == pid
        assert sandbox.show("dashboard.service", "NRestarts")["NRestarts"] == restarts
        probe = next(r for r in run.daemon.fleet.runs if r.target.name == "dashboard")
        # The pauses were met: some answers took most of them (learned as such).
        assert probe.latency.overdue_after(2.0) == 1.0
        print(f"\nslow dashboard under 3 CPU hogs: probe failures {failures(run):g}, seen {seen}")
