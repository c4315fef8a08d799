"""The supervisor's own cost: startup to READY=1, idle CPU and RSS with 3 and 100 targets, and
what its RSS is made of (import by import, in a fresh interpreter)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from devtools.bench.processes import cpu_seconds, rss_mb
from devtools.bench.settings import REPO, VENV_PYTHON, BenchError, Settings, say
from devtools.bench.stats import summary
from devtools.bench.watchers import fleet_config, supervisor
from devtools.fakes.telegram_api import FakeBotApi
from devtools.sandbox import Sandbox
from supervisor.runtime.limits import lean_environ

# What the supervisor's RSS is made of: a fresh interpreter importing what `supervisor run`
# imports, dependencies first, in this order (each figure is what that import adds on top).
# pydantic is not among them: the daemon checks its config in a short-lived child process
# (supervisor.config.file), the one place it is loaded.
IMPORT_ORDER = (
    "psutil",
    "dbus_fast.aio",
    "aiohttp",
    "supervisor.cli",
    "supervisor.app.daemon",
    "supervisor.alerts.telegram",  # only with [alerts.telegram]: python-telegram-bot
)
_IMPORT_PROBE = """
import importlib, json, os, sys
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
out = [["python", rss()]]
telegram_by = None
for name in sys.argv[1:]:
    importlib.import_module(name)
    out.append([name, rss()])
    if telegram_by is None and "telegram" in sys.modules:
        telegram_by = name
print(json.dumps({"steps": out, "telegram_by": telegram_by}))
"""

# The dependencies alone, and without the biggest one.
DEPENDENCIES = IMPORT_ORDER[:3]
LEAVE_OUT = {"aiohttp": ("aiohttp",)}
_DEPS_PROBE = """
import importlib, os, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20)
"""
EXTRA_TARGETS = 97  # with the three demo targets: 100


@contextlib.contextmanager
def fake_telegram() -> Iterator[FakeBotApi]:
    """The fake Bot API (devtools.fakes) on its own event loop in a thread, for the
    production configuration's Telegram."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-bot-api", daemon=True)
    thread.start()
    api = FakeBotApi()
    try:
        asyncio.run_coroutine_threadsafe(api.start(), loop).result(10)
        yield api
    finally:
        asyncio.run_coroutine_threadsafe(_stop(api), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def _stop(api: FakeBotApi) -> None:
    """Stop the fake, and end what it was still serving (a long poll) before the loop closes."""
    await api.stop()
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def production(box: Sandbox, api: FakeBotApi) -> Callable[[int, Path], str]:
    """What users run: the three targets at default probes, history on, an API key and
    Telegram on (alerts and chat commands, against the fake Bot API)."""
    telegram = (
        f'[alerts.telegram]\ntoken = "{api.token}"\nchat_ids = [4242]\n'
        f'api_url = "{api.url}"\ncommands = true\n'
    )
    return partial(
        fleet_config, box, recovery=True, api_key="bench-api-key-0123456789", extra=telegram
    )


def bench_startup(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    """Popen to READY=1, `startup_reps` times, with the three demo targets."""
    times = []
    for _ in range(s.startup_reps):
        build = partial(fleet_config, box, recovery=True)
        with supervisor(box, work, "startup", build) as sup:
            times.append(sup.ready_s)
    return summary(times)


def bench_idle(box: Sandbox, work: Path, s: Settings) -> dict[str, Any]:
    """Both supervisors (3 and 100 targets) at once: each one's CPU is its own /proc ticks."""
    units = [f"gen{i}.service" for i in range(EXTRA_TARGETS)]
    for unit in units:
        box.install_unit(unit, "[Service]\nExecStart=/bin/sleep infinity\n", reload=False)
    box.daemon_reload()
    box.systemctl("start", *units)
    try:
        build3 = partial(fleet_config, box, recovery=True)
        build100 = partial(fleet_config, box, recovery=True, extra_targets=EXTRA_TARGETS)
        with (
            fake_telegram() as bot_api,
            supervisor(box, work, "idle3", build3) as small,
            supervisor(box, work, "idle100", build100) as big,
            supervisor(box, work, "production", production(box, bot_api)) as prod,
        ):
            for sup in (small, big, prod):
                sup.wait_pass()
            time.sleep(s.idle_settle_s)  # the first probes and caches are not idle cost
            sups = {"idle_3_targets": small, "idle_100_targets": big, "production": prod}
            pids = {k: sup.pid for k, sup in sups.items()}
            cpu: dict[str, list[float]] = {k: [] for k in pids}
            rss: dict[str, list[float]] = {k: [] for k in pids}
            for w in range(s.idle_windows):
                c0 = {k: cpu_seconds(p) for k, p in pids.items()}
                t0 = time.monotonic()
                time.sleep(s.idle_window_s)
                elapsed = time.monotonic() - t0
                for k, p in pids.items():
                    cpu[k].append(100 * (cpu_seconds(p) - c0[k]) / elapsed)
                    rss[k].append(rss_mb(p))
                if not all(sup.running() for sup in sups.values()):
                    raise BenchError("a supervisor exited during the idle windows")
                say(f"  idle window {w + 1}/{s.idle_windows} done")
            result: dict[str, Any] = {
                k: {"cpu_percent": summary(cpu[k]), "rss_mb": summary(rss[k])} for k in pids
            }
    finally:
        box.systemctl("stop", *units, check=False)
    result["import_rss_mb"] = bench_import_rss()
    return result


def _python(script: str, *args: str) -> str:
    run = subprocess.run(
        [str(VENV_PYTHON), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        # The helpers as pure Python, aiohttp's TLS contexts without the CA file, as `supervisor
        # run` imports them (runtime/limits.py).
        env={**os.environ, "PYTHONPATH": str(REPO), **lean_environ()},
        check=False,
    )
    if run.returncode != 0:
        raise BenchError(f"measuring import RSS failed:\n{run.stderr}")
    return run.stdout


def bench_import_rss() -> dict[str, Any]:
    """RSS of a fresh interpreter after each import (cumulative, in IMPORT_ORDER), and of the
    dependencies alone with and without each big one."""
    found: dict[str, Any] = json.loads(_python(_IMPORT_PROBE, *IMPORT_ORDER))
    steps: list[list[Any]] = found["steps"]
    without = {
        what: round(float(_python(_DEPS_PROBE, *(d for d in DEPENDENCIES if d not in left))), 1)
        for what, left in LEAVE_OUT.items()
    }
    return {
        "dependencies_mb": round(float(_python(_DEPS_PROBE, *DEPENDENCIES)), 1),
        "dependencies_without_mb": without,
        "steps": [
            {"module": name, "rss_mb": round(mb, 1), "added_mb": round(mb - prev, 1)}
            for (name, mb), (_p, prev) in zip(steps, [steps[0], *steps[:-1]], strict=True)
        ],
        "telegram_by": found["telegram_by"],  # the first import that loaded it
    }
