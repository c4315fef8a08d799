"""Runs the real daemon in-process against the sandbox, and waits on conditions with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.sandbox import Sandbox
from supervisor.app.daemon import Daemon
from supervisor.config import Config, parse
from supervisor.model import Status
from tests.inside import Inside
from tests.polling import until

# In-process, the daemon's "own CPU" is the whole pytest process's, and a busy test box may
# cross the host thresholds: the breaker is off, and the budget out of reach (so HTTP is not
# throttled either), unless a test configures them.
NO_BREAKER = "[breaker]\nenabled = false\n"
# Out of reach: the daemon under test shares the pytest process, whose CPU and memory are the
# suite's (its RSS passed the 100 MB default halfway through a CI run, and a breaker opened on
# "own memory" could never close: probes stayed paused and hangs went unseen).
NO_BUDGET = "[budget]\ncpu_percent = 400\nmemory_mb = 8192\nmemory_hard_mb = 16384\n"


def config(
    sandbox: Sandbox,
    targets_toml: str,
    extra: str = "",
    breaker: str = NO_BREAKER,
    *,
    state_dir: Path | None = None,
    budget: str = NO_BUDGET,
) -> Config:
    """A config on a free HTTP port with the given [[targets]] (and other) TOML."""
    # Each daemon its own state (unless a test means to share it): attempts and give-ups
    # must not leak from test to test.
    state = state_dir or tempfile.mkdtemp(prefix="sidecar-state-", dir=sandbox.root)
    text = (
        f'state_dir = "{state}"\n{extra}\n{breaker}\n{budget}\n[http]\nhost = "127.0.0.1"\n'
        f"port = 0\n{targets_toml}"
    )
    return parse(tomllib.loads(text), env={})


def heartbeat_probe(sandbox: Sandbox, name: str, max_age_s: float = 5) -> str:
    path = sandbox.heartbeat_path(name)
    return f'[[targets.probes]]\ntype = "heartbeat"\npath = "{path}"\nmax_age_s = {max_age_s}\n'


def http_probe(sandbox: Sandbox, **kw: object) -> str:
    url = f"http://127.0.0.1:{sandbox.dashboard_port}/health"
    extra = "".join(f"{k} = {v}\n" for k, v in kw.items())
    return f'[[targets.probes]]\ntype = "http"\nurl = "{url}"\n{extra}'


def target_toml(name: str, unit: str, body: str = "", *, recovery: str = "enabled = false") -> str:
    """One [[targets]] block; recovery off unless the test gives its settings."""
    return f'[[targets]]\nname = "{name}"\nunit = "{unit}"\n{body}[targets.recovery]\n{recovery}\n'


def fleet_toml(sandbox: Sandbox, *, recovery: str = "enabled = false") -> str:
    """The three demo targets with their usual probes."""
    port = sandbox.dashboard_port
    return (
        target_toml(
            "trader",
            "trader.service",
            "critical = true\n" + heartbeat_probe(sandbox, "trader"),
            recovery=recovery,
        )
        + target_toml(
            "dashboard",
            "dashboard.service",
            f"ports = [{port}]\n" + http_probe(sandbox),
            recovery=recovery,
        )
        + target_toml(
            "position-monitor",
            "position-monitor.service",
            heartbeat_probe(sandbox, "position-monitor"),
            recovery=recovery,
        )
    )


class Running:
    """A daemon running in this event loop."""

    def __init__(self, daemon: Daemon, reload: asyncio.Event, configs: list[Config]) -> None:
        self.daemon = daemon
        self._reload = reload
        self._configs = configs

    async def reload(self, cfg: Config) -> None:
        """SIGHUP's path: the daemon re-reads its config (this one) and applies it."""
        done = self.daemon.reloads
        self._configs.append(cfg)
        self._reload.set()
        await until(lambda: self.daemon.reloads > done, 10, "the reload to be applied")

    @property
    def inside(self) -> Inside:
        """What the tests read of the daemon (not `daemon.parts`)."""
        return Inside(self.daemon)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.inside.port}"

    def status(self, name: str) -> Status:
        target = self.daemon.snapshot().target(name)
        assert target is not None
        return target.status

    def target(self, name: str) -> Any:
        return self.daemon.snapshot().target(name)

    async def get(self, path: str) -> tuple[int, Any]:
        """GET from the daemon's HTTP server in a thread (a real client over loopback)."""
        return await asyncio.to_thread(get_json, self.url + path)

    async def get_text(self, path: str) -> tuple[int, str]:
        """GET a text body (e.g. /metrics)."""
        return await asyncio.to_thread(get_text, self.url + path)


def get_text(url: str, timeout: float = 5.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


def get_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def passes(run: Running, n: int) -> None:
    """Let the supervision loop complete `n` more passes (woken, not slept for)."""
    for _ in range(n):
        done = run.inside.passes
        run.daemon.wake()
        await until(lambda d=done: run.inside.passes > d, 10, "a supervision pass")  # type: ignore[misc]


@contextlib.asynccontextmanager
async def running(sandbox: Sandbox, cfg: Config, settle: bool = True) -> AsyncIterator[Running]:
    """Start the daemon against the sandbox's bus; stop it cleanly afterwards."""
    configs = [cfg]
    daemon = Daemon(cfg, env=sandbox.env(), load_config=lambda: configs[-1])
    stop, reload = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(daemon.run(stop, reload))
    run = Running(daemon, reload, configs)
    try:
        await until(
            lambda: (run.inside.port != 0 and run.inside.on_bus) or task.done(),
            10,
            "the daemon to connect",
        )
        if task.done():
            task.result()
        if settle:
            names = [t.name for t in cfg.targets if t.unit]  # host targets have none
            await until(
                lambda: all(run.target(n).unit_state is not None for n in names),
                10,
                "every unit to be read",
            )
        yield run
    finally:
        stop.set()
        started = time.monotonic()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - started < 5, "shutdown took too long"


HOG = "while True: pass\n"


@contextlib.contextmanager
def cpu_hogs() -> Iterator[None]:
    """One busy process per core: the host's CPU at 100 % while it lasts."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


# The breaker tuned for tests: a hog per core trips it in about a second, and it closes below
# 75 %, which other work on a shared test machine rarely holds the host above.
TEST_BREAKER = (
    "[breaker]\ntrip_cpu_percent = 85\nresume_cpu_percent = 75\nsustain_s = 1\n"
    "cooldown_s = 1\nsample_interval_s = 0.25\n"
)


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at `where`: a real filesystem that fills up (root; else skips)."""
    where.mkdir(exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
