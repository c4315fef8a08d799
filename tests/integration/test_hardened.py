"""Everything the supervisor does still works under the hardened unit (units/
sidecar-supervisor.service, scored by tests/test_unit_security.py), installed by
install_services.sh into the sandbox (the session's installation, conftest.py): a Nagios
plugin as an exec probe, freeing a port held by an orphan (which reads other processes' /proc
entries and signals one), state and history written to state_dir, and an alert delivered to
Telegram. The last-word unit is covered by
tests/integration/test_last_word.py on the same installed unit."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.sandbox import Sandbox
from tests.integration.harness import get_json
from tests.integration.installed import UNIT, Installed, present
from tests.integration.test_recovery import hold_port
from tests.polling import until

CHAT = 5151
CHECK_TCP = Path("/usr/lib/nagios/plugins/check_tcp")
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(not CHECK_TCP.is_file(), reason="no check_tcp (monitoring-plugins-basic)"),
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


@pytest.fixture
def strays() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def hardened_config(inst: Installed, fake: FakeBotApi, state: Path) -> str:
    box = inst.sandbox
    port = box.dashboard_port
    probe = (
        f'  [[targets.probes]]\n  type = "exec"\n  name = "check-tcp"\n'
        f'  command = ["{CHECK_TCP}", "-H", "127.0.0.1", "-p", "{port}"]\n'
    )
    return (
        f'state_dir = "{state}"\n[http]\nport = {inst.port}\n[breaker]\nenabled = false\n'
        f"[budget]\ncpu_percent = 400\n[alerts]\nfailure_threshold = 2\n"
        f'[alerts.telegram]\ntoken = "{fake.token}"\nchat_ids = [{CHAT}]\n'
        f'api_url = "{fake.url}"\ncommands = false\ntimeout_s = 3\n'
        f'[[targets]]\nname = "dashboard"\nunit = "dashboard.service"\nports = [{port}]\n'
        f"period_s = 1\ntimeout_s = 1\n"
        f'  [[targets.probes]]\n  type = "http"\n  url = "http://127.0.0.1:{port}/health"\n'
        f"{probe}"
        f'  [targets.recovery]\n  actions = ["restart", "free-port"]\n  backoff_s = [0, 0.5]\n'
        f'[[targets]]\nname = "ghost"\nunit = "ghost.service"\n'  # never there: an alert
    )


# The session's installation, started on a config of its own and stopped after (installing
# anew would cost a venv and its wheels, about 25 s).
@pytest.mark.timeout(300)
async def test_every_feature_works_under_the_hardened_unit(
    sandbox: Sandbox,
    installation: Installed,
    fake: FakeBotApi,
    strays: list[subprocess.Popen[bytes]],
) -> None:
    inst = installation
    present(inst)
    sandbox.systemctl("stop", UNIT)
    state = sandbox.home / ".local" / "state" / "hardened"
    inst.config.write_text(hardened_config(inst, fake, state))
    # The fault is there before the supervisor starts: an orphan holds the dashboard's port.
    sandbox.systemctl("stop", "dashboard.service")
    stray = await hold_port(sandbox.dashboard_port)
    strays.append(stray)
    try:
        sandbox.systemctl("reset-failed", UNIT, check=False)
        # Off the loop: the fake Bot API answers meanwhile.
        await asyncio.to_thread(sandbox.systemctl, "start", UNIT)
        assert "SystemCallFilter=@system-service" in inst.unit_file.read_text()
        # Port freeing: found through /proc (the socket's inode in the stray's fds), killed.
        await until(lambda: stray.poll() is not None, 60, "the orphan to be freed", step=0.05)
        assert stray.returncode == -signal.SIGTERM
        url = f"http://127.0.0.1:{inst.port}/health"

        def dashboard_passes() -> bool:
            doc = get_json(url, timeout=1)[1]
            return all(p["status"] == "pass" for p in doc["checks"]["dashboard"][0]["probes"])

        await until(dashboard_passes, 60, "the dashboard passing again", step=0.1)
        # The Nagios plugin ran as an exec probe, under the same seccomp filter, and passed.
        _, doc = await asyncio.to_thread(get_json, url)
        (entry,) = doc["checks"]["dashboard"]
        probes = {p["probe"]: p for p in entry["probes"]}
        assert probes["check-tcp"]["status"] == "pass", probes["check-tcp"]
        assert probes["check-tcp"]["output"].startswith("TCP OK"), probes["check-tcp"]
        # Telegram: the missing unit's alert arrives (the dashboard's may come first).
        await until(
            lambda: any("ghost" in str(m["text"]) for m in fake.sent), 60, "ghost's alert", step=0.1
        )
        # State and history: written into state_dir.
        await until((state / "state.json").is_file, 30, "the state file", step=0.1)
        assert json.loads((state / "state.json").read_text())["version"] >= 1
        events = await asyncio.to_thread(get_json, f"{url[:-7]}/events?target=dashboard")
        assert events[1]["source"] == "store", events
        with sqlite3.connect(state / "history.sqlite3") as db:
            (count,) = db.execute("SELECT count(*) FROM events").fetchone()
        assert count > 0
        assert inst.show("ActiveState")["ActiveState"] == "active"
    finally:
        inst.config.write_text(inst.good_config())
        await asyncio.to_thread(sandbox.systemctl, "stop", UNIT, check=False)
