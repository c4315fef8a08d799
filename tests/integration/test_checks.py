"""Checks that matter to a trading box, against the real sandbox: exec probes on the Nagios
plugin API, the warn level end to end, JSON freshness, and host checks with their cure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.sandbox import Sandbox
from supervisor.model import ActiveState, Status
from tests.integration.harness import Running, config, running, target_toml, tmpfs
from tests.polling import until
from tests.unit.test_command import all_gone

pytestmark = pytest.mark.sandbox

PLUGINS = Path("/usr/lib/nagios/plugins")
FAST = "period_s = 0.2\nfailure_threshold = 1\nconfirm_interval_s = 0.1\n"


def sample(run: Running, name: str, labels: dict[str, str]) -> float | None:
    """A value from the daemon's own metrics registry (what /metrics would show)."""
    return run.inside.sample(name, labels)


def recoveries(run: Running, target: str, action: str, result: str = "done") -> float | None:
    labels = {"target": target, "action": action, "result": result}
    return sample(run, "supervisor_recovery_actions_total", labels)


def runs(run: Running, target: str, kind: str) -> float:
    return sample(run, "supervisor_probe_runs_total", {"target": target, "type": kind}) or 0.0


def exec_probe(command: list[str], extra: str = "") -> str:
    words = ", ".join(f'"{w}"' for w in command)
    return f'[[targets.probes]]\ntype = "exec"\ncommand = [{words}]\n{extra}'


def script(path: Path, code_file: Path) -> Path:
    """A tiny plugin: exits with the code in `code_file`, says so, and reports a figure."""
    path.write_text(
        "#!/bin/sh\n"
        f'code=$(cat "{code_file}")\n'
        'echo "DEMO $code - exit $code | latency=${code}5ms;10;20;0"\n'
        'exit "$code"\n'
    )
    path.chmod(0o755)
    return path


async def test_exec_probe_pass_warn_fail_pass_and_a_warning_never_restarts(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.write_text("0")
    plugin = script(tmp_path / "check_demo", code)
    # One restart, 3 s after the failure (time to read /health), then a long wait.
    recovery = "backoff_s = [3, 120]\nmax_attempts = 3"
    body = exec_probe([str(plugin)], FAST)
    cfg = config(sandbox, target_toml("dashboard", "dashboard.service", body, recovery=recovery))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 10, "pass")
        pid = sandbox.main_pid("dashboard.service")

        code.write_text("1")
        await until(lambda: run.status("dashboard") is Status.WARN, 10, "warn")
        seen = runs(run, "dashboard", "exec")
        await until(lambda: runs(run, "dashboard", "exec") >= seen + 10, 10, "10 runs at warn")
        status, doc = await run.get("/health/dashboard")
        entry = doc["checks"]["dashboard"][0]
        assert (status, doc["status"], entry["output"]) == (200, "warn", "DEMO 1 - exit 1")
        assert entry["recovery"] == "idle"
        assert sandbox.main_pid("dashboard.service") == pid  # a warning never restarts

        code.write_text("2")
        await until(lambda: run.status("dashboard") is Status.FAIL, 10, "fail")
        status, doc = await run.get("/health/dashboard")
        assert (status, doc["output"]) == (503, "DEMO 2 - exit 2")
        _, metrics = await run.get_text("/metrics")
        perf = 'supervisor_probe_perfdata_seconds{label="latency",probe="exec",target="dashboard"}'
        assert f"{perf} 0.025" in metrics
        assert (
            'supervisor_probe_status{probe="exec",status="fail",target="dashboard"} 1.0' in metrics
        )
        # A failure does restart: the cure for a unit target.
        await until(
            lambda: sandbox.main_pid("dashboard.service") not in (0, pid), 15, "restart", step=0.1
        )

        code.write_text("0")
        await until(lambda: run.status("dashboard") is Status.PASS, 10, "pass again")


async def test_a_hanging_command_is_killed_with_its_children(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    hang = f"sleep 300 & echo $! >> {pids}; (sleep 300; true) & echo $! >> {pids}; "
    hang += f"echo $$ >> {pids}; sleep 300"
    body = exec_probe(["/bin/sh", "-c", hang], "timeout_s = 0.5\nfailure_threshold = 1\n")
    cfg = config(sandbox, target_toml("trader", "trader.service", body))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("trader") is Status.FAIL, 15, "fail by timeout")
        assert run.target("trader").output == "exec: timeout after 0.5 s"
        found = [int(p) for p in pids.read_text().split()]
        assert len(found) >= 3
        await all_gone(found)  # no process of the hung check outlives its timeout


@pytest.fixture
def plugins() -> Path:
    if not (PLUGINS / "check_disk").is_file() or not (PLUGINS / "check_tcp").is_file():
        pytest.skip(f"monitoring-plugins-basic is not installed ({PLUGINS}); scripts/test.sh")
    return PLUGINS


async def test_debian_check_disk_and_check_tcp_run_as_exec_probes(
    sandbox: Sandbox, plugins: Path
) -> None:
    port = str(sandbox.dashboard_port)
    body = exec_probe(
        [str(plugins / "check_disk"), "-w", "1%", "-c", "1%", "-p", "/"], 'name = "check-disk"\n'
    ) + exec_probe(
        [str(plugins / "check_tcp"), "-H", "127.0.0.1", "-p", port], 'name = "check-tcp"\n'
    )
    cfg = config(sandbox, target_toml("dashboard", "dashboard.service", body + FAST))
    async with running(sandbox, cfg) as run:
        await until(
            lambda: all(p.status is Status.PASS for p in run.target("dashboard").probes),
            15,
            "both plugins to pass",
        )
        disk, tcp = run.target("dashboard").probes
        assert disk.output.startswith("DISK OK")
        assert tcp.output.startswith("TCP OK")
        _, metrics = await run.get_text("/metrics")
        assert 'supervisor_probe_perfdata_bytes{label="/",probe="check-disk"' in metrics
        assert 'supervisor_probe_perfdata_seconds{label="time",probe="check-tcp"' in metrics


async def test_a_silent_feed_fails_through_max_age_and_recovery_restarts_it(
    sandbox: Sandbox,
) -> None:
    url = f"http://127.0.0.1:{sandbox.dashboard_port}/feed"
    body = (
        f'[[targets.probes]]\ntype = "http"\nurl = "{url}"\n'
        'json = [{ path = "feed.connected", equals = true },'
        ' { path = "feed.last_message_at", max_age_s = 3 }]\n'
        "period_s = 0.5\nfailure_threshold = 2\n"
    )
    # Recovery off first, so the failure is seen as it is (with recovery on, the restart
    # follows within milliseconds); then a reload turns recovery on and it restarts.
    watching = config(sandbox, target_toml("dashboard", "dashboard.service", body))
    async with running(sandbox, watching) as run:
        await until(lambda: run.status("dashboard") is Status.PASS, 10, "pass")
        pid = sandbox.main_pid("dashboard.service")
        sandbox.fault("dashboard", "stall-feed")
        await until(lambda: run.status("dashboard") is Status.FAIL, 15, "the silent feed to fail")
        seen = run.target("dashboard")
        assert seen.output.startswith("http: feed.last_message_at: ")
        assert seen.output.endswith("s old (max 3 s)")
        # Connected, running, and dead inside: only the freshness condition can tell.
        assert seen.unit_state.active_state is ActiveState.ACTIVE
        assert seen.unit_state.main_pid == pid
        recovering = target_toml("dashboard", "dashboard.service", body, recovery="backoff_s = [0]")
        await run.reload(config(sandbox, recovering))
        await until(
            lambda: sandbox.main_pid("dashboard.service") not in (0, pid), 15, "restart", step=0.1
        )
        await until(lambda: run.status("dashboard") is Status.PASS, 15, "a fresh feed again")
        # The job's JobRemoved may come a moment after the unit's new state: wait for it.
        await until(lambda: recoveries(run, "dashboard", "restart") == 1.0, 10, "restart done")


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (root only)."""
    with tmpfs(tmp_path / "small", "1m") as mount:
        yield mount


def fill(mnt: Path, name: str, kib: int) -> None:
    (mnt / name).write_bytes(b"x" * kib * 1024)


def disk_target(mnt: Path, recovery: str = "") -> str:
    return (
        '[[targets]]\nname = "disk"\n[[targets.probes]]\ntype = "disk"\n'
        f'path = "{mnt}"\nwarn_percent = 50\nfail_percent = 80\ninodes = false\n{FAST}'
        f"{recovery}"
    )


async def test_disk_probe_on_a_small_tmpfs_goes_warn_then_fail_and_back(
    sandbox: Sandbox, small: Path
) -> None:
    cfg = config(sandbox, disk_target(small))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("disk") is Status.PASS, 10, "pass")
        fill(small, "a", 600)
        await until(lambda: run.status("disk") is Status.WARN, 10, "warn")
        assert "used (warn at 50%)" in run.target("disk").output
        fill(small, "b", 300)
        await until(lambda: run.status("disk") is Status.FAIL, 10, "fail")
        status, doc = await run.get("/health/disk")
        entry = doc["checks"]["disk"][0]
        assert (status, entry["componentType"], entry["unit"]) == (503, "host", None)
        assert "used (fail at 80%)" in entry["output"]
        for name in ("a", "b"):
            (small / name).unlink()
        await until(lambda: run.status("disk") is Status.PASS, 10, "pass again")


async def test_a_host_target_is_cured_by_its_run_command(sandbox: Sandbox, small: Path) -> None:
    cure = f'[targets.recovery]\nrun = ["/bin/sh", "-c", "rm -f {small}/cache-*; echo cleared"]\n'
    cfg = config(sandbox, disk_target(small, cure))
    async with running(sandbox, cfg) as run:
        await until(lambda: run.status("disk") is Status.PASS, 10, "pass")
        fill(small, "cache-1", 900)
        await until(lambda: not (small / "cache-1").exists(), 10, "the cure to run")
        await until(lambda: run.status("disk") is Status.PASS, 10, "pass again")
        assert recoveries(run, "disk", "run") == 1.0
        assert run.target("disk").recovery == "attempt 1/3"
